/**
 * IM conversation server (seed 001, SPEC.md 2.3): users register with a
 * status, see who is online, invite each other into conversations, and chat
 * in several conversations at once.
 *
 * ```sh
 * deno run --allow-net servers/im.ts          # port 6666
 * ```
 *
 * Where SPEC.md is silent: conversation ids are integers counting from 1; a
 * successful JOIN, LEAVE or STATUS sends nothing back but the ONLINE_USERS
 * update it causes (STATUS) or nothing (JOIN, LEAVE); joining a conversation
 * you are in is harmless; a user who left may JOIN again while the
 * conversation exists; LIST_CONVERSATIONS lists every conversation, including
 * ones nobody has joined yet.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  encodeIm,
  IM_PORT,
  IM_TEXTS,
  type ImClientMessage,
  ImLineDecoder,
  ImMessageError,
  type ImServerMessage,
  parseImLine,
} from "../protocols/im.ts";
import { isFrameError } from "../protocols/errors.ts";
import type { Connection } from "../net/connection.ts";
import { formatAddr } from "../net/address.ts";
import { type Server, serveStream, type TlsCertificate } from "../net/serve.ts";
import {
  type CommandSpec,
  intValue,
  millisecondsFromSeconds,
  portValue,
  runCommand,
  SERVER_FLAGS,
  serverBasics,
  TLS_SERVER_FLAGS,
} from "../cli/command.ts";
import { runServer } from "../cli/run_server.ts";
import { CLUSTER_FLAGS, clusterValues, NO_CONNECTION } from "./_cluster.ts";
import { ImCluster } from "./_im_cluster.ts";

/** Options of {@link serveIm}. */
export interface ImServerOptions {
  /** Address to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; default 6666, 0 picks a free one. */
  port?: number;
  /** How often ONLINE_USERS is pushed to everyone, ms (default 10 s; 0: only on change). */
  presenceIntervalMs?: number;
  /** Longest line in bytes (default 64 KiB). */
  maxLineBytes?: number;
  /** Send-queue limit per connection. */
  maxQueueBytes?: number;
  /** Speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** NATS URLs: join the cluster of instances that share them (SPEC.md 8.2). */
  nats?: string[];
  /** A cluster peer silent this long has lost its users, ms (default 5 s). */
  clusterTimeoutMs?: number;
}

interface User {
  name: string;
  status: string;
  /** A peer instance's user (mirrored by the cluster) has {@link NO_CONNECTION}. */
  connection: Pick<Connection, "send" | "end">;
  conversations: Set<Conversation>;
}

interface Conversation {
  id: number;
  invited: Set<string>;
  members: Set<User>;
}

/** A running IM server, with a read-only view of its state for tests and tools. */
export interface ImServer extends Server {
  /** Online users by name, with their status. */
  onlineUsers(): Record<string, string>;
  /** Conversations by id, with their members. */
  conversations(): Record<string, string[]>;
  /** Ids of the cluster peers heard within the timeout (empty without `--nats`). */
  clusterPeers(): string[];
}

const logger = getLogger(["parley", "im"]);

/**
 * Starts an IM server.
 *
 * @example
 * ```ts
 * import { serveIm } from "./im.ts";
 * await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
 * console.assert(Object.keys(server.onlineUsers()).length === 0);
 * ```
 */
export function serveIm(options: ImServerOptions = {}): ImServer {
  const users = new Map<string, User>();
  const conversations = new Map<number, Conversation>();
  let nextId = 1;

  const send = (connection: Pick<Connection, "send">, message: ImServerMessage) =>
    connection.send(encodeIm(message));
  const error = (connection: Pick<Connection, "send">, text: string) =>
    send(connection, { command: "ERROR", text });
  const onlineUsers = () => Object.fromEntries([...users.values()].map((u) => [u.name, u.status]));
  const listConversations = () =>
    Object.fromEntries(
      [...conversations.values()].map((c) => [String(c.id), [...c.members].map((u) => u.name)]),
    );

  const pushPresence = () => {
    if (users.size === 0) return;
    const frame = encodeIm({ command: "ONLINE_USERS", users: onlineUsers() });
    for (const user of users.values()) user.connection.send(frame);
  };

  const leave = (user: User, conversation: Conversation) => {
    conversation.members.delete(user);
    user.conversations.delete(conversation);
    if (conversation.members.size === 0) {
      conversations.delete(conversation.id);
      logger.debug("Conversation {id} ended", { id: conversation.id });
    }
  };

  const goOffline = (user: User) => {
    if (users.get(user.name) !== user) return;
    for (const conversation of [...user.conversations]) leave(user, conversation);
    users.delete(user.name);
    logger.info("{name} went offline", { name: user.name });
    pushPresence();
  };

  /** REGISTER from a connection with no user yet: the new user, or undefined if refused. */
  const register = (connection: Connection, username: string, status: string): User | undefined => {
    if (users.has(username)) {
      error(connection, IM_TEXTS.nameTaken(username));
      return undefined;
    }
    const user: User = { name: username, status, connection, conversations: new Set() };
    users.set(username, user);
    logger.info("{name} registered from {peer}", {
      name: username,
      peer: formatAddr(connection.remoteAddr),
    });
    pushPresence();
    return user;
  };

  /** Handles one message of a registered user; returns false when the connection should close. */
  const act = (user: User, m: ImClientMessage | ImServerMessage): boolean => {
    const reject = (text: string) => {
      error(user.connection, text);
      return true;
    };
    switch (m.command) {
      case "REGISTER":
        return reject(IM_TEXTS.alreadyRegistered(user.name));
      case "STATUS":
        user.status = m.status;
        pushPresence();
        return true;
      case "GOODBYE":
        goOffline(user);
        return false;
      case "INVITE": {
        const conversation: Conversation = {
          id: cluster?.takeId() ?? nextId++,
          invited: new Set([user.name]),
          members: new Set(),
        };
        conversations.set(conversation.id, conversation);
        const invitation = encodeIm({
          command: "INVITATION",
          conversation: conversation.id,
          inviter: user.name,
        });
        user.connection.send(invitation);
        for (const name of new Set(m.users)) {
          if (name === user.name) continue;
          const invitee = users.get(name);
          if (!invitee) {
            reject(IM_TEXTS.notOnline(name));
            continue;
          }
          conversation.invited.add(name);
          invitee.connection.send(invitation);
        }
        return true;
      }
      case "LIST_CONVERSATIONS":
        send(user.connection, { command: "CONVERSATIONS", conversations: listConversations() });
        return true;
      case "JOIN": {
        const conversation = conversations.get(Number(m.conversation));
        if (!conversation) return reject(IM_TEXTS.noConversation(m.conversation));
        if (!conversation.invited.has(user.name)) {
          return reject(IM_TEXTS.notInvited(m.conversation));
        }
        conversation.members.add(user);
        user.conversations.add(conversation);
        return true;
      }
      case "SEND_MESSAGE": {
        const conversation = conversations.get(Number(m.conversation));
        if (!conversation) return reject(IM_TEXTS.noConversation(m.conversation));
        if (!conversation.members.has(user)) return reject(IM_TEXTS.notMember(m.conversation));
        const frame = encodeIm({
          command: "MESSAGE",
          conversation: conversation.id,
          sender: user.name,
          message: m.message,
        });
        for (const member of conversation.members) member.connection.send(frame);
        return true;
      }
      case "LEAVE": {
        const conversation = conversations.get(Number(m.conversation));
        if (!conversation) return reject(IM_TEXTS.noConversation(m.conversation));
        if (!conversation.members.has(user)) return reject(IM_TEXTS.notMember(m.conversation));
        leave(user, conversation);
        return true;
      }
      default:
        return reject(`${m.command} is sent by the server, not by clients`);
    }
  };

  const cluster = options.nats ? imCluster() : undefined;
  function imCluster() {
    return new ImCluster<User>(
      { servers: options.nats!, timeoutMs: options.clusterTimeoutMs ?? 5000, logger },
      {
        addRemote: (name, status) => {
          if (users.has(name)) return undefined;
          const user: User = { name, status, connection: NO_CONNECTION, conversations: new Set() };
          users.set(name, user);
          pushPresence();
          return user;
        },
        removeRemote: goOffline,
        act: (user, message) => void act(user, message),
        restore: (user, id, invited) => {
          let conversation = conversations.get(id);
          if (!conversation) {
            conversations.set(id, conversation = { id, invited: new Set(), members: new Set() });
          }
          for (const name of invited) conversation.invited.add(name);
          conversation.members.add(user);
          user.conversations.add(conversation);
        },
        memberships: (user) => [...user.conversations].map((c) => c.id),
        evict: (name) => {
          const user = users.get(name);
          if (!user || user.connection === NO_CONNECTION) return;
          error(user.connection, IM_TEXTS.nameTaken(name));
          goOffline(user);
          void user.connection.end();
        },
        hasUser: (name) => users.has(name),
        hasConversation: (id) => conversations.has(id),
        invited: (id) => [...conversations.get(id)?.invited ?? []],
        localUsers: () =>
          [...users.values()].filter((u) => u.connection !== NO_CONNECTION).map((u) => [
            u.name,
            u.status,
            [...u.conversations].map((c) => [c.id, [...c.invited]]),
          ]),
      },
    );
  }

  /** REGISTER, with the name claimed from the whole cluster first. */
  const registerAnywhere = async (connection: Connection, username: string, status: string) => {
    if (cluster && !users.has(username) && !(await cluster.claimName(username))) {
      error(connection, IM_TEXTS.nameTaken(username));
      return undefined;
    }
    const user = register(connection, username, status);
    if (user) cluster?.registered(user.name, user.status);
    return user;
  };

  const server = serveStream(
    { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? IM_PORT, tls: options.tls },
    async (connection) => {
      const decoder = new ImLineDecoder({ maxLineBytes: options.maxLineBytes });
      let user: User | undefined;
      try {
        for await (const chunk of connection.chunks()) {
          let lines: string[];
          try {
            lines = decoder.decode(chunk);
          } catch (e) {
            if (!isFrameError(e)) throw e;
            error(connection, e.message);
            await connection.end();
            return;
          }
          for (const line of lines) {
            let message;
            try {
              message = parseImLine(line);
            } catch (e) {
              if (!(e instanceof ImMessageError)) throw e;
              error(connection, e.message);
              continue;
            }
            if (!user) {
              if (message.command === "REGISTER") {
                user = await registerAnywhere(connection, message.username, message.status);
              } else error(connection, IM_TEXTS.registerFirst);
              continue;
            }
            if (cluster) await cluster.before(message as ImClientMessage);
            const open = act(user, message);
            cluster?.after(user.name, message as ImClientMessage);
            if (!open) {
              await connection.end();
              return;
            }
          }
        }
      } finally {
        if (user) {
          goOffline(user);
          cluster?.offline(user.name);
        }
      }
    },
    {
      logger,
      maxQueueBytes: options.maxQueueBytes,
      farewell: (connection) => error(connection, IM_TEXTS.shuttingDown),
    },
  );

  const interval = options.presenceIntervalMs ?? 10_000;
  const timer = interval > 0 ? setInterval(pushPresence, interval) : undefined;
  const shutdown = async () => {
    clearInterval(timer);
    await server.shutdown();
    await cluster?.close();
  };
  logger.info("Listening on {addr}", { addr: formatAddr(server.addr) });
  return {
    addr: server.addr,
    finished: server.finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
    onlineUsers,
    conversations: listConversations,
    clusterPeers: () => cluster?.link.peers() ?? [],
  };
}

/** The command-line interface of `servers/im.ts`. */
export const IM_COMMAND: CommandSpec = {
  name: "servers/im.ts",
  usage: "[--port PORT] [--presence-interval SECONDS] ...",
  summary:
    "IM conversation server: presence, invitation-only conversations, messages to every member.",
  flags: {
    port: {
      type: "string",
      default: String(IM_PORT),
      value: "PORT",
      description: "port; 0 picks one",
    },
    "presence-interval": {
      type: "string",
      default: "10",
      value: "SECONDS",
      description: "how often ONLINE_USERS is sent to everyone (0: only on change)",
    },
    "max-line": {
      type: "string",
      default: String(64 * 1024),
      value: "BYTES",
      description: "longest line",
    },
    ...TLS_SERVER_FLAGS,
    ...CLUSTER_FLAGS,
    ...SERVER_FLAGS,
  },
};

/** Runs the IM server from command-line arguments until SIGINT/SIGTERM. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, IM_COMMAND, async ({ values }) => {
    const options: ImServerOptions = {
      ...serverBasics(values),
      port: portValue(values.port),
      presenceIntervalMs: millisecondsFromSeconds(values["presence-interval"], "presence-interval"),
      maxLineBytes: intValue(values["max-line"], "max-line", 16),
      ...clusterValues(values),
    };
    await runServer(values, logger, () => serveIm(options));
  });
}

if (import.meta.main) await main(Deno.args);
