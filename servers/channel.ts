/**
 * Channel chat server (seed 004, SPEC.md section 4): rooms, many clients, and
 * every chat fanned out to the other members of the sender's channel. Every
 * frame in both directions is exactly 200 bytes.
 *
 * ```sh
 * deno run --allow-net servers/channel.ts 55555      # or --port 55555
 * ```
 *
 * Where the original is silent, Parley decides (and the tests hold it to it):
 * - The first frame is the client's name. An empty name, or one over
 *   {@link MAX_NAME_BYTES} bytes, gets a one-line explanation and the
 *   connection is closed. Names need not be unique (as in the original); they
 *   may contain spaces.
 * - A channel name is everything after the command word, trimmed, so
 *   `/join 168 tas` joins `168 tas`. At most {@link MAX_CHANNEL_BYTES} bytes.
 * - `/join` to the channel you are in changes nothing and sends nothing.
 * - `/list` names channels in creation order. If the names do not fit in one
 *   frame, the reply continues in further frames, split between names.
 * - A chat whose `[NAME] text` would not fit in 200 bytes is not truncated: the
 *   sender is told, and nothing is delivered.
 *
 * @module
 */

import {
  CHANNEL_PORT,
  CHANNEL_SERVER_TEXTS,
  listFrames,
  MAX_CHANNEL_BYTES,
  MAX_NAME_BYTES,
} from "../protocols/channel.ts";
import { getLogger } from "@logtape/logtape";
import {
  CHANNEL_TEXTS,
  ChannelDecoder,
  channelTextBytes,
  encodeChannelFrame,
  encodeChannelReply,
  parseChannelCommand,
  tryEncodeChannelFrame,
} from "../protocols/channel.ts";
import type { Connection } from "../net/connection.ts";
import { formatAddr } from "../net/address.ts";
import { type Server, serveStream, type TlsCertificate } from "../net/serve.ts";
import {
  type CommandSpec,
  portValue,
  runCommand,
  SERVER_FLAGS,
  serverBasics,
  TLS_SERVER_FLAGS,
  UsageError,
} from "../cli/command.ts";
import { runServer } from "../cli/run_server.ts";
import { ChannelCluster } from "./_channel_cluster.ts";
import { CLUSTER_FLAGS, clusterValues, NO_CONNECTION } from "./_cluster.ts";

/** Options of {@link serveChannel}. */
export interface ChannelServerOptions {
  /** Address to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; default 55555, 0 picks a free one. */
  port?: number;
  /** Send-queue limit per connection (default 1 MiB). */
  maxQueueBytes?: number;
  /** Speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** NATS URLs: join the cluster of instances that share them (SPEC.md 8.2). */
  nats?: string[];
  /** A cluster peer silent this long has lost its members, ms (default 5 s). */
  clusterTimeoutMs?: number;
}

/** A running channel server; in a cluster it also tells which peers it hears. */
export interface ChannelServer extends Server {
  /** Ids of the cluster peers heard within the timeout (empty without `--nats`). */
  clusterPeers(): string[];
}

interface Member {
  /** A peer instance's member (mirrored by the cluster) has {@link NO_CONNECTION}. */
  connection: Pick<Connection, "send">;
  name: string;
  channel?: Set<Member>;
}

const logger = getLogger(["parley", "channel"]);

/**
 * Starts a channel chat server.
 *
 * @example
 * ```ts
 * import { serveChannel } from "./channel.ts";
 * await using server = serveChannel({ port: 0 });
 * console.assert((server.addr as Deno.NetAddr).port > 0);
 * ```
 */
export function serveChannel(options: ChannelServerOptions = {}): ChannelServer {
  /** Channels by name, in creation order; each is the set of its members. */
  const channels = new Map<string, Set<Member>>();

  /** A reply to one client; replies that quote what it typed are cut to fit, never refused. */
  const sendText = (member: Member, text: string) =>
    member.connection.send(encodeChannelReply(text));

  /** One frame, encoded once, queued for every member but `except`. */
  const broadcast = (channel: Set<Member>, frame: Uint8Array, except?: Member) => {
    for (const other of channel) if (other !== except) other.connection.send(frame);
  };

  const leave = (member: Member) => {
    const channel = member.channel;
    if (!channel) return;
    channel.delete(member);
    member.channel = undefined;
    broadcast(channel, encodeChannelFrame(CHANNEL_TEXTS.left(member.name)));
  };

  const enter = (member: Member, channel: Set<Member>) => {
    leave(member);
    broadcast(channel, encodeChannelFrame(CHANNEL_TEXTS.joined(member.name)));
    channel.add(member);
    member.channel = channel;
  };

  const cluster = options.nats
    ? new ChannelCluster<Member>(
      { servers: options.nats, timeoutMs: options.clusterTimeoutMs ?? 5000, logger },
      {
        remoteMember: (name) => ({ connection: NO_CONNECTION, name }),
        enter: (member, name) => {
          let channel = channels.get(name);
          if (!channel) channels.set(name, channel = new Set());
          if (channel !== member.channel) enter(member, channel);
        },
        leave,
        chat: (member, frame) => member.channel && broadcast(member.channel, frame, member),
      },
    )
    : undefined;
  const listed = () => cluster?.order([...channels.keys()]) ?? [...channels.keys()];

  const handle = (member: Member, text: string) => {
    const command = parseChannelCommand(text);
    switch (command.kind) {
      case "chat": {
        if (!member.channel) return sendText(member, CHANNEL_TEXTS.notInChannel);
        // The hot path: check the size and encode in one step, once for every receiver.
        const line = `[${member.name}] ${command.text}`;
        const frame = tryEncodeChannelFrame(line);
        if (!frame) {
          return sendText(member, CHANNEL_SERVER_TEXTS.chatTooLong(channelTextBytes(line)));
        }
        broadcast(member.channel, frame, member);
        return cluster?.chatted(member, line);
      }
      case "join": {
        if (command.channel === "") return sendText(member, CHANNEL_TEXTS.joinRequiresName);
        const channel = channels.get(command.channel);
        if (!channel) return sendText(member, CHANNEL_TEXTS.noChannelExists(command.channel));
        if (channel !== member.channel) {
          enter(member, channel);
          cluster?.entered(member, member.name, command.channel, false);
        }
        return;
      }
      case "create": {
        if (command.channel === "") return sendText(member, CHANNEL_TEXTS.createRequiresName);
        if (channels.has(command.channel)) {
          return sendText(member, CHANNEL_TEXTS.channelExists(command.channel));
        }
        if (channelTextBytes(command.channel) > MAX_CHANNEL_BYTES) {
          return sendText(member, CHANNEL_SERVER_TEXTS.channelTooLong);
        }
        const channel = new Set<Member>();
        channels.set(command.channel, channel);
        enter(member, channel);
        return cluster?.entered(member, member.name, command.channel, true);
      }
      case "list":
        for (const frame of listFrames(listed())) member.connection.send(frame);
        return;
      case "invalid":
        return sendText(member, CHANNEL_TEXTS.invalidControlMessage(command.command));
    }
  };

  const server = serveStream(
    {
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? CHANNEL_PORT,
      tls: options.tls,
    },
    async (connection) => {
      const decoder = new ChannelDecoder();
      let member: Member | undefined;
      try {
        for await (const chunk of connection.chunks()) {
          for (const text of decoder.decode(chunk)) {
            if (member) {
              if (cluster && text.startsWith("/")) await cluster.settle(text, channels);
              handle(member, text);
              continue;
            }
            const problem = text === ""
              ? CHANNEL_SERVER_TEXTS.emptyName
              : channelTextBytes(text) > MAX_NAME_BYTES
              ? CHANNEL_SERVER_TEXTS.nameTooLong
              : undefined;
            if (problem) {
              connection.send(encodeChannelFrame(problem));
              await connection.end();
              return;
            }
            member = { connection, name: text };
            logger.debug("{peer} is {name}", {
              peer: formatAddr(connection.remoteAddr),
              name: text,
            });
          }
          if (connection.closed) break;
        }
      } finally {
        if (member) {
          leave(member);
          cluster?.left(member);
        }
      }
    },
    { logger, maxQueueBytes: options.maxQueueBytes },
  );
  logger.info("Listening on {addr}", { addr: formatAddr(server.addr) });
  const clusterPeers = () => cluster?.link.peers() ?? [];
  if (!cluster) return { ...server, clusterPeers };
  const shutdown = async () => {
    await server.shutdown();
    await cluster.close();
  };
  return { ...server, shutdown, [Symbol.asyncDispose]: shutdown, clusterPeers };
}

/** The command-line interface of `servers/channel.ts`. */
export const CHANNEL_COMMAND: CommandSpec = {
  name: "servers/channel.ts",
  usage: "[PORT] [--port PORT] [--host HOST]",
  summary: "Channel chat server: 200-byte frames, /create, /join, /list, chat to your channel.",
  flags: {
    port: {
      type: "string",
      default: String(CHANNEL_PORT),
      value: "PORT",
      description: "port (also the first positional argument); 0 picks one",
    },
    ...TLS_SERVER_FLAGS,
    ...CLUSTER_FLAGS,
    ...SERVER_FLAGS,
  },
};

/** Runs the channel server from command-line arguments until SIGINT/SIGTERM. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, CHANNEL_COMMAND, async ({ values, positionals }) => {
    if (positionals.length > 1) {
      throw new UsageError(`unexpected arguments: ${positionals.slice(1).join(" ")}`);
    }
    const port = portValue(positionals[0] ?? values.port);
    const basics = serverBasics(values);
    const cluster = clusterValues(values);
    await runServer(values, logger, () => serveChannel({ ...basics, ...cluster, port }));
  });
}

if (import.meta.main) await main(Deno.args);
