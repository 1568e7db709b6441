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
 * - The first frame is the client's name. An empty name, one over
 *   {@link MAX_NAME_BYTES} bytes, or one that is not valid UTF-8 or holds a
 *   control character (SPEC.md 6.3) gets a one-line explanation; the client
 *   stays connected and its next frame is its next try. Names need not be
 *   unique (as in the original); they may contain spaces.
 * - A channel name is everything after the command word, trimmed, so
 *   `/join 168 tas` joins `168 tas`. At most {@link MAX_CHANNEL_BYTES} bytes,
 *   valid UTF-8 with no control characters.
 * - `/join` to the channel you are in changes nothing and sends nothing.
 * - A channel exists while it has members (SPEC.md 6.4): the last one leaving
 *   removes it, and the leave notice goes to nobody.
 * - `/list` names channels in creation order. If the names do not fit in one
 *   frame, the reply continues in further frames, split between names. A reply
 *   takes at most a quarter of the send queue (`--max-queue`, 1 MiB: 1,310
 *   frames); a longer list is cut and its last frame says how many were left out.
 * - A chat whose `[NAME] text` would not fit in 200 bytes is not truncated: the
 *   sender is told, and nothing is delivered.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  CHANNEL_FRAME_BYTES,
  CHANNEL_PORT,
  CHANNEL_SERVER_TEXTS,
  CHANNEL_TEXTS,
  ChannelDecoder,
  channelTextBytes,
  encodeChannelFrame,
  encodeChannelReply,
  listFrames,
  MAX_CHANNEL_BYTES,
  MAX_NAME_BYTES,
  parseChannelCommand,
  tryEncodeChannelFrame,
} from "../protocols/channel.ts";
import { isSafeName } from "../protocols/names.ts";
import { type Connection, DEFAULT_MAX_QUEUE_BYTES } from "../net/connection.ts";
import { formatAddr } from "../net/address.ts";
import { type Server, type ServerLimits, serveStream, type TlsCertificate } from "../net/serve.ts";
import { DEFAULT_REGISTER_TIMEOUT_MS, FrameReader } from "../net/framing.ts";
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

/**
 * Options of {@link serveChannel}. The shared limits ({@link ServerLimits}:
 * `--max-per-ip`, `--exempt`, `--max-connections`, `--frame-timeout`,
 * `--register-timeout`) apply as in every server; registering is sending a
 * name that is accepted.
 */
export interface ChannelServerOptions extends ServerLimits {
  /** Address to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; default 55555, 0 picks a free one. */
  port?: number;
  /** Send-queue limit per connection (default 1 MiB); a `/list` reply takes at most a quarter. */
  maxQueueBytes?: number;
  /** Speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** NATS URLs: join the cluster of instances that share them (SPEC.md 8.2). */
  nats?: string[];
  /** A cluster peer silent this long has lost its members, ms (default 5 s). */
  clusterTimeoutMs?: number;
}

/** One named client. */
export interface ChannelMember {
  /** Where its frames go; a peer instance's member (mirrored by the cluster) has {@link NO_CONNECTION}. */
  readonly connection: Pick<Connection, "send">;
  /** The name it gave (checked: safe, 1-64 bytes). */
  readonly name: string;
  /** The channel it is in, if any. */
  channel?: Channel;
}

/** One channel: its name and its members, in joining order. */
export interface Channel {
  /** The channel's name. */
  readonly name: string;
  /** Who is in it. */
  readonly members: Set<ChannelMember>;
}

/**
 * The channel server's state: channels by name in creation order, and who is
 * where. A channel exists while it has members: it is created with its first
 * member and removed when the last one leaves (SPEC.md 6.4), so a client holds
 * at most one channel and a `/create` flood holds one channel per connection.
 * Every change of membership goes through {@link ChannelRooms.move}.
 */
export class ChannelRooms {
  #channels = new Map<string, Channel>();

  /** True when a channel called `name` exists. */
  has(name: string): boolean {
    return this.#channels.has(name);
  }

  /** The channel called `name`, if it exists. */
  get(name: string): Channel | undefined {
    return this.#channels.get(name);
  }

  /** Channel names in creation order. */
  names(): string[] {
    return [...this.#channels.keys()];
  }

  /** How many channels exist. */
  get size(): number {
    return this.#channels.size;
  }

  /**
   * Moves `member` out of its channel (the members there get "NAME has left"; an
   * emptied channel is removed) and into `target` if given: an existing channel,
   * or the name of a new one to create. The members of the channel entered get
   * "NAME has joined"; the mover gets nothing.
   */
  move(member: ChannelMember, target?: Channel | string): void {
    const old = member.channel;
    if (old) {
      old.members.delete(member);
      member.channel = undefined;
      if (old.members.size === 0) this.#channels.delete(old.name);
      else broadcast(old, encodeChannelFrame(CHANNEL_TEXTS.left(member.name)));
    }
    if (target === undefined) return;
    let channel: Channel;
    if (typeof target === "string") {
      channel = { name: target, members: new Set() };
      this.#channels.set(target, channel);
    } else {
      channel = target;
      broadcast(channel, encodeChannelFrame(CHANNEL_TEXTS.joined(member.name)));
    }
    channel.members.add(member);
    member.channel = channel;
  }
}

/** One frame, encoded once, queued for every member of `channel` but `except`. */
function broadcast(channel: Channel, frame: Uint8Array, except?: ChannelMember): void {
  for (const other of channel.members) if (other !== except) other.connection.send(frame);
}

/** Why a first frame is not a usable name, or undefined when it is one. */
function nameProblem(text: string): string | undefined {
  if (text === "") return CHANNEL_SERVER_TEXTS.emptyName;
  if (!isSafeName(text)) return CHANNEL_SERVER_TEXTS.badName;
  if (channelTextBytes(text) > MAX_NAME_BYTES) return CHANNEL_SERVER_TEXTS.nameTooLong;
  return undefined;
}

const logger = getLogger(["parley", "channel"]);

/** A running channel server, with a read-only view of its channels for tests and tools. */
export interface ChannelServer extends Server {
  /** Channel names in creation order. */
  channels(): string[];
  /** Ids of the cluster peers heard within the timeout (empty without `--nats`). */
  clusterPeers(): string[];
}

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
  const service = new ChannelService(options);
  const { registerTimeoutMs, cluster, rooms } = service;
  const server = serveStream(
    {
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? CHANNEL_PORT,
      tls: options.tls,
    },
    (connection) => service.serve(connection),
    {
      ...options,
      logger,
      maxQueueBytes: service.maxQueueBytes,
      registerTimeoutMs,
      // Any 200-byte frame is a message the client shows: refusals and time-outs are one frame.
      refuse: (text) => encodeChannelReply(text),
      onRegisterTimeout: () =>
        encodeChannelReply(CHANNEL_SERVER_TEXTS.nameTimeout(registerTimeoutMs / 1000)),
    },
  );
  logger.info("Listening on {addr}", { addr: formatAddr(server.addr) });
  const channels = () => rooms.names();
  const clusterPeers = () => cluster?.link.peers() ?? [];
  if (!cluster) return { ...server, channels, clusterPeers };
  const shutdown = async () => {
    await server.shutdown();
    await cluster.close();
  };
  return { ...server, shutdown, [Symbol.asyncDispose]: shutdown, channels, clusterPeers };
}

/** What one channel server does with each connection and frame; `serveChannel` is its I/O shell. */
class ChannelService {
  readonly rooms: ChannelRooms = new ChannelRooms();
  readonly cluster?: ChannelCluster<ChannelMember>;
  readonly maxQueueBytes: number;
  readonly registerTimeoutMs: number;
  readonly #maxListFrames: number;

  constructor(options: ChannelServerOptions) {
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.#maxListFrames = Math.floor(this.maxQueueBytes / 4 / CHANNEL_FRAME_BYTES);
    this.registerTimeoutMs = options.registerTimeoutMs ?? DEFAULT_REGISTER_TIMEOUT_MS;
    const rooms = this.rooms;
    this.cluster = options.nats
      ? new ChannelCluster<ChannelMember>(
        { servers: options.nats, timeoutMs: options.clusterTimeoutMs ?? 5000, logger },
        {
          remoteMember: (name) => ({ connection: NO_CONNECTION, name }),
          enter: (member, name) => {
            const channel = rooms.get(name);
            if (!channel || channel !== member.channel) rooms.move(member, channel ?? name);
          },
          leave: (member) => rooms.move(member),
          chat: (member, frame) => member.channel && broadcast(member.channel, frame, member),
          exists: (name) => rooms.get(name) !== undefined,
        },
      )
      : undefined;
  }

  /** Reads one connection's frames: first its name, then commands and chats. */
  async serve(connection: Connection): Promise<void> {
    let member: ChannelMember | undefined;
    try {
      // A FrameReader, not receiveFrames: no suspended generator per idle connection.
      const reader = new FrameReader(connection, new ChannelDecoder());
      for (let texts; (texts = await reader.next());) {
        for (const text of texts) {
          if (connection.ending) return;
          if (member) {
            // In a cluster, /create, /list and a /join of an unknown channel first hear from every peer.
            if (this.cluster && text.startsWith("/")) await this.cluster.settle(text, this.rooms);
            this.handle(member, text);
          } else if ((member = this.identify(connection, text))) connection.registered();
        }
      }
    } finally {
      if (member) {
        this.rooms.move(member);
        this.cluster?.left(member);
      }
    }
  }

  /** The first frames of a connection: a name, or a reply saying why not (the client may retry). */
  identify(connection: Connection, text: string): ChannelMember | undefined {
    const problem = nameProblem(text);
    if (problem) {
      connection.send(encodeChannelFrame(problem));
      return undefined;
    }
    logger.debug("{peer} is {name}", { peer: formatAddr(connection.remoteAddr), name: text });
    return { connection, name: text };
  }

  /** One frame of a named member. */
  handle(member: ChannelMember, text: string): void {
    const command = parseChannelCommand(text);
    switch (command.kind) {
      case "chat":
        return this.chat(member, command.text);
      case "join":
        return this.join(member, command.channel);
      case "create":
        return this.create(member, command.channel);
      case "list":
        for (const frame of listFrames(this.#listed(), { maxFrames: this.#maxListFrames })) {
          member.connection.send(frame);
        }
        return;
      case "invalid":
        return sendText(member, CHANNEL_TEXTS.invalidControlMessage(command.command));
    }
  }

  /** A chat line to the other members of the sender's channel. */
  chat(member: ChannelMember, text: string): void {
    if (!member.channel) return sendText(member, CHANNEL_TEXTS.notInChannel);
    // The hot path: check the size and encode in one step, once for every receiver.
    const line = `[${member.name}] ${text}`;
    const frame = tryEncodeChannelFrame(line);
    if (!frame) return sendText(member, CHANNEL_SERVER_TEXTS.chatTooLong(channelTextBytes(line)));
    broadcast(member.channel, frame, member);
    this.cluster?.chatted(member, line);
  }

  /** `/join NAME`: move to an existing channel (nothing when already there). */
  join(member: ChannelMember, name: string): void {
    const problem = channelProblem(name, CHANNEL_TEXTS.joinRequiresName);
    if (problem) return sendText(member, problem);
    const channel = this.rooms.get(name);
    if (!channel) return sendText(member, CHANNEL_TEXTS.noChannelExists(name));
    if (channel === member.channel) return;
    this.rooms.move(member, channel);
    this.cluster?.entered(member, member.name, name, false);
  }

  /** `/create NAME`: a new channel, joined at once. */
  create(member: ChannelMember, name: string): void {
    const problem = channelProblem(name, CHANNEL_TEXTS.createRequiresName);
    if (problem) return sendText(member, problem);
    if (this.rooms.get(name)) return sendText(member, CHANNEL_TEXTS.channelExists(name));
    if (channelTextBytes(name) > MAX_CHANNEL_BYTES) {
      return sendText(member, CHANNEL_SERVER_TEXTS.channelTooLong);
    }
    this.rooms.move(member, name);
    this.cluster?.entered(member, member.name, name, true);
  }

  #listed(): string[] {
    return this.cluster?.order(this.rooms.names()) ?? this.rooms.names();
  }
}

/** A reply to one client; replies that quote what it typed are cut to fit, never refused. */
function sendText(member: ChannelMember, text: string): void {
  member.connection.send(encodeChannelReply(text));
}

/** Why `channel` cannot be named in a /join or /create, or undefined. */
function channelProblem(channel: string, requiresName: string): string | undefined {
  if (channel === "") return requiresName;
  return isSafeName(channel) ? undefined : CHANNEL_SERVER_TEXTS.badChannelName;
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
