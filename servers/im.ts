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
  type ConversationId,
  encodeIm,
  IM_CLIENT_MAX_LINE_BYTES,
  IM_MAX_CONVERSATIONS,
  IM_MAX_LINE_BYTES,
  IM_MAX_USERS,
  IM_PORT,
  IM_PRESENCE_COALESCE_MS,
  IM_TEXTS,
  type ImClientMessage,
  ImLineDecoder,
  ImMessageError,
  type ImServerMessage,
  parseImLine,
} from "../protocols/im.ts";
import { utf8Length } from "../protocols/names.ts";
import { type Connection, DEFAULT_MAX_QUEUE_BYTES } from "../net/connection.ts";
import { formatAddr } from "../net/address.ts";
import { type Server, type ServerLimits, serveStream, type TlsCertificate } from "../net/serve.ts";
import { DEFAULT_REGISTER_TIMEOUT_MS, FrameReader } from "../net/framing.ts";
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

/**
 * Options of {@link serveIm}. The shared limits ({@link ServerLimits}:
 * `--max-per-ip`, `--exempt`, `--max-connections`, `--frame-timeout`,
 * `--register-timeout`) apply as in every server; registering is a REGISTER
 * that is accepted.
 */
export interface ImServerOptions extends ServerLimits {
  /** Address to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; default 6666, 0 picks a free one. */
  port?: number;
  /** How often ONLINE_USERS is pushed to everyone, ms (default 10 s; 0: only on change). */
  presenceIntervalMs?: number;
  /** Presence changes within this many ms go out as one ONLINE_USERS (default 200). */
  presenceCoalesceMs?: number;
  /** Longest line accepted from a client, in bytes (default 64 KiB). */
  maxLineBytes?: number;
  /** Longest line sent (default 1 MiB, what Parley's client accepts); CONVERSATIONS is cut to fit. */
  maxReplyBytes?: number;
  /** Send-queue limit per connection (default 1 MiB); CONVERSATIONS takes at most a quarter. */
  maxQueueBytes?: number;
  /** Registered users at once (default 5000). */
  maxUsers?: number;
  /** Conversations one user may be a member of (default 100). */
  maxConversations?: number;
  /** Speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** NATS URLs: join the cluster of instances that share them (SPEC.md 8.2). */
  nats?: string[];
  /** A cluster peer silent this long has lost its users, ms (default 5 s). */
  clusterTimeoutMs?: number;
}

/** Where a user's lines go: its connection, or {@link MIRROR} for a peer instance's user. */
export type ImLink = Pick<Connection, "send" | "end" | "drain">;

/** The link of a user mirrored from a peer instance (SPEC.md 8.2): its own instance delivers. */
const MIRROR: ImLink = { ...NO_CONNECTION, drain: () => Promise.resolve() };

/** One registered user. */
export interface ImUser {
  /** Its name (checked: {@link isUsername}). */
  readonly name: string;
  /** Its status (checked: {@link isStatus}). */
  status: string;
  /** Where its lines go ({@link MIRROR} for a peer instance's user). */
  readonly connection: ImLink;
  /** Conversations it is a member of (at most `maxConversations`). */
  readonly conversations: Set<ImConversation>;
  /** Conversations it was invited to and that still exist. */
  readonly invitations: Set<ImConversation>;
  /** The presence version it was last sent. */
  presenceSeen: number;
  /** True while an ONLINE_USERS sent to it is still queued. */
  presenceQueued: boolean;
}

/** One conversation: it exists while it has members (SPEC.md 6.4). */
export interface ImConversation {
  /** Its id, unique for the server's lifetime. */
  readonly id: number;
  /** Users who may JOIN. */
  readonly invited: Set<ImUser>;
  /** Members, the inviter first. */
  readonly members: Set<ImUser>;
}

/**
 * The IM server's state: users by name and conversations by id, with the caps
 * of SPEC.md 6.4. Every method either changes the state and returns what
 * happened, or returns the ERROR text and changes nothing; sending is the
 * caller's business.
 */
export class ImRooms {
  /** Online users by name, in registration order. */
  readonly users: Map<string, ImUser> = new Map();
  /** Ongoing conversations by id, in creation order. */
  readonly conversations: Map<number, ImConversation> = new Map();
  #nextId = 1;
  #maxUsers: number;
  #maxConversations: number;
  #takeId: () => number | undefined;

  /**
   * Makes an empty state with the given caps. `takeId` hands out conversation
   * ids (a cluster's, unique everywhere); without it, or when it gives
   * undefined, they count from 1.
   */
  constructor(
    limits: { maxUsers?: number; maxConversations?: number; takeId?: () => number | undefined } =
      {},
  ) {
    this.#maxUsers = limits.maxUsers ?? IM_MAX_USERS;
    this.#maxConversations = limits.maxConversations ?? IM_MAX_CONVERSATIONS;
    this.#takeId = limits.takeId ?? (() => undefined);
  }

  /** Adds a user, or returns why not (name taken, server full). */
  register(connection: ImLink, name: string, status: string): ImUser | string {
    if (this.users.has(name)) return IM_TEXTS.nameTaken(name);
    if (this.users.size >= this.#maxUsers) return IM_TEXTS.serverFull(this.#maxUsers);
    const user: ImUser = {
      name,
      status,
      connection,
      conversations: new Set(),
      invitations: new Set(),
      presenceSeen: 0,
      presenceQueued: false,
    };
    this.users.set(name, user);
    return user;
  }

  /** Removes a user: it leaves every conversation and its invitations go. False if it was not online. */
  remove(user: ImUser): boolean {
    if (this.users.get(user.name) !== user) return false;
    for (const conversation of [...user.conversations]) this.#leave(user, conversation);
    for (const conversation of user.invitations) conversation.invited.delete(user);
    user.invitations.clear();
    this.users.delete(user.name);
    return true;
  }

  /**
   * A new conversation with `inviter` as its member and the online users among
   * `names` invited; returns it with the invitees and the names not online, or
   * the ERROR text when the inviter is in too many conversations.
   */
  invite(
    inviter: ImUser,
    names: readonly string[],
  ): { conversation: ImConversation; invitees: ImUser[]; missing: string[] } | string {
    if (inviter.conversations.size >= this.#maxConversations) {
      return IM_TEXTS.tooManyConversations(this.#maxConversations);
    }
    const conversation: ImConversation = {
      id: this.#takeId() ?? this.#nextId++,
      invited: new Set([inviter]),
      members: new Set([inviter]),
    };
    this.conversations.set(conversation.id, conversation);
    inviter.conversations.add(conversation);
    inviter.invitations.add(conversation);
    const invitees: ImUser[] = [];
    const missing: string[] = [];
    for (const name of new Set(names)) {
      if (name === inviter.name) continue;
      const invitee = this.users.get(name);
      if (!invitee) {
        missing.push(name);
        continue;
      }
      conversation.invited.add(invitee);
      invitee.invitations.add(conversation);
      invitees.push(invitee);
    }
    return { conversation, invitees, missing };
  }

  /** Makes an invited user a member (a member's JOIN changes nothing); the ERROR text if it cannot. */
  join(user: ImUser, id: ConversationId): string | undefined {
    const conversation = this.conversations.get(Number(id));
    if (!conversation) return IM_TEXTS.noConversation(id);
    if (conversation.members.has(user)) return undefined;
    if (!conversation.invited.has(user)) return IM_TEXTS.notInvited(id);
    if (user.conversations.size >= this.#maxConversations) {
      return IM_TEXTS.tooManyConversations(this.#maxConversations);
    }
    conversation.members.add(user);
    user.conversations.add(conversation);
    return undefined;
  }

  /**
   * Makes `user` a member of conversation `id` (created if missing) with the
   * online users among `invited` invited: a peer instance's state arriving.
   */
  restore(user: ImUser, id: number, invited: readonly string[]): void {
    let conversation = this.conversations.get(id);
    if (!conversation) {
      conversation = { id, invited: new Set(), members: new Set() };
      this.conversations.set(id, conversation);
    }
    for (const name of invited) {
      const invitee = this.users.get(name);
      if (!invitee) continue;
      conversation.invited.add(invitee);
      invitee.invitations.add(conversation);
    }
    conversation.members.add(user);
    user.conversations.add(conversation);
  }

  /** Names of the users invited to conversation `id`. */
  invitedNames(id: number): string[] {
    return [...this.conversations.get(id)?.invited ?? []].map((u) => u.name);
  }

  /** The conversation `id` if `user` is a member of it, or the ERROR text. */
  membership(user: ImUser, id: ConversationId): ImConversation | string {
    const conversation = this.conversations.get(Number(id));
    if (!conversation) return IM_TEXTS.noConversation(id);
    if (!conversation.members.has(user)) return IM_TEXTS.notMember(id);
    return conversation;
  }

  /** Takes a member out; the ERROR text if it is not one. */
  leave(user: ImUser, id: ConversationId): string | undefined {
    const conversation = this.membership(user, id);
    if (typeof conversation === "string") return conversation;
    this.#leave(user, conversation);
  }

  #leave(user: ImUser, conversation: ImConversation): void {
    conversation.members.delete(user);
    user.conversations.delete(conversation);
    if (conversation.members.size > 0) return;
    // The last member is gone: the conversation ends, pending invitations with it.
    this.conversations.delete(conversation.id);
    for (const invitee of conversation.invited) invitee.invitations.delete(conversation);
    logger.debug("Conversation {id} ended", () => ({ id: conversation.id }));
  }

  /** Online users and their statuses. */
  onlineUsers(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const user of this.users.values()) out[user.name] = user.status;
    return out;
  }

  /** Conversation ids and their members. */
  listConversations(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const c of this.conversations.values()) {
      out[String(c.id)] = [...c.members].map((u) => u.name);
    }
    return out;
  }
}

/**
 * Sends ONLINE_USERS: a change is sent at most once per coalescing window, to
 * each user at most one at a time (a user whose last ONLINE_USERS is still
 * queued gets the newest one once it has read that one), encoded once for all.
 */
class PresencePusher {
  #rooms: ImRooms;
  #coalesceMs: number;
  #maxReplyBytes: number;
  #version = 1;
  #timer?: ReturnType<typeof setTimeout>;
  #frame?: { version: number; bytes: Uint8Array };
  #stopped = false;

  constructor(rooms: ImRooms, coalesceMs: number, maxReplyBytes: number) {
    this.#rooms = rooms;
    this.#coalesceMs = coalesceMs;
    this.#maxReplyBytes = maxReplyBytes;
  }

  /** The set or a status changed: everyone gets the new list when the window closes. */
  changed(): void {
    this.#version++;
    this.#schedule();
  }

  /** A newcomer gets the list at once (SPEC 2.3: right after its own REGISTER). */
  welcome(user: ImUser): void {
    this.#sendTo(user, this.#current());
  }

  /** The periodic push: everyone gets the list, changed or not. */
  everyone(): void {
    for (const user of this.#rooms.users.values()) user.presenceSeen = 0;
    this.#flush();
  }

  /** Stops the pending push and every later one. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, this.#coalesceMs);
  }

  #flush(): void {
    if (this.#rooms.users.size === 0) return;
    const frame = this.#current();
    for (const user of this.#rooms.users.values()) {
      if (user.presenceSeen < frame.version && !user.presenceQueued && user.connection !== MIRROR) {
        this.#sendTo(user, frame);
      }
    }
  }

  #sendTo(user: ImUser, frame: { version: number; bytes: Uint8Array }): void {
    if (!user.connection.send(frame.bytes)) return;
    user.presenceSeen = frame.version;
    user.presenceQueued = true;
    user.connection.drain().then(() => {
      user.presenceQueued = false;
      if (user.presenceSeen < this.#version && this.#rooms.users.get(user.name) === user) {
        this.#schedule();
      }
    });
  }

  /** ONLINE_USERS for the current version, encoded once (and cut to the reply limit). */
  #current(): { version: number; bytes: Uint8Array } {
    if (this.#frame?.version !== this.#version) {
      const { bytes, cut } = encodeCapped(
        "ONLINE_USERS",
        [...this.#rooms.users.values()].map((u) => [u.name, u.status]),
        this.#maxReplyBytes,
      );
      if (cut > 0) logger.warning("ONLINE_USERS cut: {cut} users left out", { cut });
      this.#frame = { version: this.#version, bytes };
    }
    return this.#frame;
  }
}

/**
 * Encodes `COMMAND {key: value, ...}` with as many entries as fit in
 * `maxBytes` (LF included), in order; `cut` counts the ones left out.
 */
function encodeCapped(
  command: "ONLINE_USERS" | "CONVERSATIONS",
  entries: [string, unknown][],
  maxBytes: number,
): { bytes: Uint8Array; cut: number } {
  const whole = encodeIm(
    command === "ONLINE_USERS"
      ? { command, users: Object.fromEntries(entries) as Record<string, string> }
      : { command, conversations: Object.fromEntries(entries) as Record<string, string[]> },
  );
  if (whole.length <= maxBytes) return { bytes: whole, cut: 0 };
  let size = command.length + 4; // space, braces, LF
  let kept = 0;
  for (const [key, value] of entries) {
    size += utf8Length(JSON.stringify(key)) + utf8Length(JSON.stringify(value)) + 2;
    if (size > maxBytes) break;
    kept++;
  }
  return { ...encodeCapped(command, entries.slice(0, kept), Infinity), cut: entries.length - kept };
}

const logger = getLogger(["parley", "im"]);

/** A running IM server, with a read-only view of its state for tests and tools. */
export interface ImServer extends Server {
  /** Online users by name, with their status. */
  onlineUsers(): Record<string, string>;
  /** Conversations by id, with their members. */
  conversations(): Record<string, string[]>;
  /** Ids of the cluster peers heard within the timeout (empty without `--nats`). */
  clusterPeers(): string[];
}

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
  const service = new ImService(options);
  const { registerTimeoutMs } = service;
  const server = serveStream(
    { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? IM_PORT, tls: options.tls },
    (connection) => service.serve(connection),
    {
      ...options,
      logger,
      maxQueueBytes: service.maxQueueBytes,
      registerTimeoutMs,
      farewell: (connection) => service.error(connection, IM_TEXTS.shuttingDown),
      refuse: (text) => encodeIm({ command: "ERROR", text }),
      onFrameError: (e) => encodeIm({ command: "ERROR", text: e.message }),
      onRegisterTimeout: () =>
        encodeIm({ command: "ERROR", text: IM_TEXTS.registerTimeout(registerTimeoutMs / 1000) }),
    },
  );
  if (options.nats) service.cluster = joinCluster(options, service.rooms, service);
  const interval = options.presenceIntervalMs ?? 10_000;
  const timer = interval > 0 ? setInterval(() => service.presence.everyone(), interval) : undefined;
  const shutdown = async () => {
    clearInterval(timer);
    service.presence.stop();
    await server.shutdown();
    await service.cluster?.close();
  };
  logger.info("Listening on {addr}", { addr: formatAddr(server.addr) });
  return {
    addr: server.addr,
    finished: server.finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
    onlineUsers: () => service.rooms.onlineUsers(),
    conversations: () => service.rooms.listConversations(),
    clusterPeers: () => service.cluster?.link.peers() ?? [],
  };
}

/**
 * What one IM server does with each connection and message; {@link serveIm}
 * is its I/O shell. Exported for tests and benches (`bench/im_bench.ts`),
 * which drive it with stand-in links: a SEND_MESSAGE is encoded once and the
 * same bytes go to every member's queue.
 *
 * @example
 * ```ts
 * import { ImService } from "./im.ts";
 * const queued: Uint8Array[] = [];
 * const link = {
 *   send: (b: Uint8Array) => queued.push(b) > 0,
 *   end: () => Promise.resolve(),
 *   drain: () => Promise.resolve(),
 * };
 * const service = new ImService({});
 * const alice = service.rooms.register(link, "alice", "online");
 * const bob = service.rooms.register(link, "bob", "online");
 * if (typeof alice === "string" || typeof bob === "string") throw new Error(alice.toString());
 * service.act(alice, { command: "INVITE", users: ["bob"] });
 * service.act(bob, { command: "JOIN", conversation: 1 });
 * queued.length = 0;
 * service.act(bob, { command: "SEND_MESSAGE", conversation: 1, message: "hi" });
 * console.assert(queued.length === 2 && queued[0] === queued[1]);
 * ```
 */
export class ImService {
  /** The cluster this instance belongs to (`--nats`), if any. */
  cluster?: ImCluster<ImUser>;
  /** Users and conversations. */
  readonly rooms: ImRooms;
  /** Sends ONLINE_USERS (coalesced, encoded once for all). */
  readonly presence: PresencePusher;
  /** Send-queue limit per connection. */
  readonly maxQueueBytes: number;
  /** Longest line sent. */
  readonly maxReplyBytes: number;
  /** `--register-timeout`, ms. */
  readonly registerTimeoutMs: number;
  readonly #maxLineBytes?: number;

  /** A service with no users yet; the options are {@link serveIm}'s. */
  constructor(options: ImServerOptions) {
    this.rooms = new ImRooms({ ...options, takeId: () => this.cluster?.takeId() });
    this.maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.maxReplyBytes = options.maxReplyBytes ?? IM_CLIENT_MAX_LINE_BYTES;
    this.registerTimeoutMs = options.registerTimeoutMs ?? DEFAULT_REGISTER_TIMEOUT_MS;
    this.#maxLineBytes = options.maxLineBytes;
    this.presence = new PresencePusher(
      this.rooms,
      options.presenceCoalesceMs ?? IM_PRESENCE_COALESCE_MS,
      this.maxReplyBytes,
    );
  }

  /** Reads one connection's lines until it closes; a registered user goes offline after. */
  async serve(connection: Connection): Promise<void> {
    // A FrameReader, not receiveFrames: every line of one read is handled in the
    // same turn, so each member's send queue is flushed once per read, not once
    // per line (a generator resumes after the flush microtasks), and no suspended
    // generator is held per idle connection.
    const reader = new FrameReader(
      connection,
      new ImLineDecoder({ maxLineBytes: this.#maxLineBytes }),
    );
    let user: ImUser | undefined;
    try {
      for (let lines; (lines = await reader.next());) {
        for (const line of lines) {
          if (connection.ending) return;
          let message;
          try {
            message = parseImLine(line);
          } catch (e) {
            if (!(e instanceof ImMessageError)) throw e;
            this.error(connection, e.message);
            continue;
          }
          if (user) {
            // No await without a cluster: a microtask per line costs throughput.
            if (this.cluster) await this.cluster.before(message as ImClientMessage);
            const open = this.act(user, message);
            this.cluster?.after(user.name, message as ImClientMessage);
            if (!open) return; // GOODBYE: serveStream ends the connection
          } else if (message.command !== "REGISTER") {
            this.error(connection, IM_TEXTS.registerFirst);
          } else if ((user = await this.register(connection, message.username, message.status))) {
            connection.registered();
          }
        }
      }
    } finally {
      if (user) {
        this.goOffline(user);
        this.cluster?.offline(user.name);
      }
    }
  }

  /** Sends `ERROR "text"`. */
  error = (connection: Pick<Connection, "send">, text: string): void => {
    connection.send(encodeIm({ command: "ERROR", text }));
  };

  /** CONVERSATIONS, cut to the reply limit and a quarter of the queue; an ERROR says so. */
  sendConversations(user: ImUser): void {
    const entries = [...this.rooms.conversations.values()].map((
      c,
    ): [string, string[]] => [String(c.id), [...c.members].map((u) => u.name)]);
    const { bytes, cut } = encodeCapped(
      "CONVERSATIONS",
      entries,
      Math.min(this.maxReplyBytes, Math.floor(this.maxQueueBytes / 4)),
    );
    user.connection.send(bytes);
    if (cut > 0) {
      this.error(user.connection, IM_TEXTS.conversationsCut(entries.length - cut, entries.length));
    }
  }

  /** Removes a user from everything and tells everyone. */
  goOffline = (user: ImUser): void => {
    if (!this.rooms.remove(user)) return;
    logger.info("{name} went offline", () => ({ name: user.name }));
    this.presence.changed();
  };

  /** REGISTER from a connection with no user yet: the new user, or undefined if refused. */
  async register(
    connection: Connection,
    username: string,
    status: string,
  ): Promise<ImUser | undefined> {
    // In a cluster the name is claimed from every instance first.
    if (
      this.cluster && !this.rooms.users.has(username) && !(await this.cluster.claimName(username))
    ) {
      this.error(connection, IM_TEXTS.nameTaken(username));
      return undefined;
    }
    const user = this.rooms.register(connection, username, status);
    if (typeof user === "string") {
      this.error(connection, user);
      return undefined;
    }
    logger.info("{name} registered from {peer}", () => ({
      name: username,
      peer: formatAddr(connection.remoteAddr),
    }));
    this.presence.changed();
    this.presence.welcome(user);
    this.cluster?.registered(user.name, user.status);
    return user;
  }

  /** INVITE: the inviter and every online invitee get the INVITATION; the rest an ERROR. */
  invite(user: ImUser, names: readonly string[]): void {
    const result = this.rooms.invite(user, names);
    if (typeof result === "string") return this.error(user.connection, result);
    const invitation = encodeIm({
      command: "INVITATION",
      conversation: result.conversation.id,
      inviter: user.name,
    });
    user.connection.send(invitation);
    for (const name of result.missing) this.error(user.connection, IM_TEXTS.notOnline(name));
    for (const invitee of result.invitees) invitee.connection.send(invitation);
  }

  /** Handles one message of a registered user; returns false when the connection should close. */
  act = (user: ImUser, m: ImClientMessage | ImServerMessage): boolean => {
    switch (m.command) {
      case "REGISTER":
        return this.reply(user, IM_TEXTS.alreadyRegistered(user.name));
      case "STATUS":
        user.status = m.status;
        this.presence.changed();
        return true;
      case "GOODBYE":
        this.goOffline(user);
        return false;
      case "INVITE":
        this.invite(user, m.users);
        return true;
      case "LIST_CONVERSATIONS":
        this.sendConversations(user);
        return true;
      case "JOIN":
        return this.reply(user, this.rooms.join(user, m.conversation));
      case "SEND_MESSAGE":
        return this.reply(user, this.say(user, m.conversation, m.message));
      case "LEAVE":
        return this.reply(user, this.rooms.leave(user, m.conversation));
      default:
        return this.reply(user, `${m.command} is sent by the server, not by clients`);
    }
  };

  /** Sends the ERROR `problem` if there is one; the connection stays open (true). */
  reply(user: ImUser, problem: string | undefined): true {
    if (problem !== undefined) this.error(user.connection, problem);
    return true;
  }

  /** SEND_MESSAGE: one MESSAGE, encoded once, to every member; an ERROR text if not a member. */
  say(user: ImUser, id: ConversationId, message: string): string | undefined {
    const conversation = this.rooms.membership(user, id);
    if (typeof conversation === "string") return conversation;
    const frame = encodeIm({
      command: "MESSAGE",
      conversation: conversation.id,
      sender: user.name,
      message,
    });
    for (const member of conversation.members) member.connection.send(frame);
    return undefined;
  }
}

/** The IM server's hooks for its cluster (SPEC.md 8.2): peers' users are mirrored in `rooms`. */
function joinCluster(
  options: ImServerOptions,
  rooms: ImRooms,
  server: {
    act: (user: ImUser, message: ImClientMessage) => boolean;
    goOffline: (user: ImUser) => void;
    presence: PresencePusher;
    error: (connection: Pick<Connection, "send">, text: string) => void;
  },
): ImCluster<ImUser> {
  return new ImCluster<ImUser>(
    { servers: options.nats!, timeoutMs: options.clusterTimeoutMs ?? 5000, logger },
    {
      addRemote: (name, status) => {
        const user = rooms.register(MIRROR, name, status);
        if (typeof user === "string") return undefined;
        server.presence.changed();
        return user;
      },
      removeRemote: server.goOffline,
      act: (user, message) => void server.act(user, message),
      restore: (user, id, invited) => rooms.restore(user, id, invited),
      memberships: (user) => [...user.conversations].map((c) => c.id),
      evict: (name) => {
        const user = rooms.users.get(name);
        if (!user || user.connection === MIRROR) return;
        server.error(user.connection, IM_TEXTS.nameTaken(name));
        server.goOffline(user);
        void user.connection.end();
      },
      hasUser: (name) => rooms.users.has(name),
      hasConversation: (id) => rooms.conversations.has(id),
      invited: (id) => rooms.invitedNames(id),
      localUsers: () =>
        [...rooms.users.values()].filter((u) => u.connection !== MIRROR).map((u) => [
          u.name,
          u.status,
          [...u.conversations].map((c): [number, string[]] => [c.id, rooms.invitedNames(c.id)]),
        ]),
    },
  );
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
    "presence-coalesce": {
      type: "string",
      default: String(IM_PRESENCE_COALESCE_MS / 1000),
      value: "SECONDS",
      description: "presence changes within this window go out as one ONLINE_USERS",
    },
    "max-line": {
      type: "string",
      default: String(IM_MAX_LINE_BYTES),
      value: "BYTES",
      description: "longest line accepted from a client",
    },
    "max-users": {
      type: "string",
      default: String(IM_MAX_USERS),
      value: "N",
      description: "users registered at once; a REGISTER past it is an ERROR",
    },
    "max-conversations": {
      type: "string",
      default: String(IM_MAX_CONVERSATIONS),
      value: "N",
      description:
        "conversations one user may be a member of; an INVITE or JOIN past it is an ERROR",
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
      presenceCoalesceMs: millisecondsFromSeconds(values["presence-coalesce"], "presence-coalesce"),
      maxLineBytes: intValue(values["max-line"], "max-line", 16),
      maxUsers: intValue(values["max-users"], "max-users", 1),
      maxConversations: intValue(values["max-conversations"], "max-conversations", 1),
      ...clusterValues(values),
    };
    await runServer(values, logger, () => serveIm(options));
  });
}

if (import.meta.main) await main(Deno.args);
