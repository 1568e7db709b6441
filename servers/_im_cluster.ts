/**
 * The IM server's part of the cluster (SPEC.md 8.2): each instance publishes
 * what its own users do, and every other instance replays it on a mirror of
 * that user (a user without a connection), through the same code a local user
 * goes through. So `ONLINE_USERS`, `CONVERSATIONS`, invitations and messages
 * cover every instance, and each instance delivers to its own clients.
 *
 * Ownership: a user belongs to the instance it is connected to, which alone
 * publishes about it. A conversation belongs to nobody: every instance holds
 * it while a member (local or mirrored) is in it. Two things must be unique in
 * the whole cluster and are claimed from every peer before use (the lower
 * instance id wins a tie): a username (`u:NAME`) and a conversation id
 * (`c:ID`). Ids count up from the highest any instance has seen (snapshots
 * carry it), as one server's do.
 *
 * After a partition (NATS down, then back) two instances may each have given
 * the same name away: the earlier registration keeps it, the later one gets
 * `ERROR` "username NAME is already taken" and is disconnected.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { ImClientMessage } from "../protocols/im.ts";
import { Cluster } from "./_cluster.ts";

/** A local user as a snapshot holds it: name, status, registration time, conversations. */
export type ImUserState = [string, string, number, [number, string[]][]];

/** What the cluster needs from the IM server. */
export interface ImClusterTarget<U> {
  /** Adds a peer's user (without a connection); undefined when the name is in use here. */
  addRemote(name: string, status: string): U | undefined;
  /** Takes a peer's user offline (leaves its conversations, presence update). */
  removeRemote(user: U): void;
  /** Runs a peer user's command here, as the server runs a local user's. */
  act(user: U, message: ImClientMessage): void;
  /** Makes `user` a member of conversation `id` (created if missing) with these invitees. */
  restore(user: U, id: number, invited: string[]): void;
  /** Ids of the conversations `user` is in. */
  memberships(user: U): number[];
  /** The local user called `name` loses the name to an earlier registration elsewhere. */
  evict(name: string): void;
  /** True when `name` is online here (local or mirrored). */
  hasUser(name: string): boolean;
  /** True when conversation `id` exists here. */
  hasConversation(id: number): boolean;
  /** The invitees of conversation `id`. */
  invited(id: number): string[];
  /** Every local user, without registration times (the cluster adds them). */
  localUsers(): [string, string, [number, string[]][]][];
}

/** Options of {@link ImCluster}. */
export interface ImClusterOptions {
  /** NATS URLs. */
  servers: string[];
  /** `--cluster-timeout` in ms. */
  timeoutMs: number;
  /** The server's logger. */
  logger: Logger;
}

type Event =
  | { t: "reg"; u: string; s: string; at: number }
  | { t: "do"; u: string; m: ImClientMessage; id?: number }
  | { t: "off"; u: string };
type Snapshot = { next: number; users: ImUserState[] };

interface Mirror<U> {
  peer: string;
  user: U;
  at: number;
  status: string;
}

/** Commands that change shared state, so peers replay them. */
const REPLAYED = new Set(["STATUS", "INVITE", "JOIN", "SEND_MESSAGE", "LEAVE"]);

/** One IM server's link to its cluster. */
export class ImCluster<U extends object> {
  #target: ImClusterTarget<U>;
  #cluster: Cluster<Event, Snapshot>;
  /** Registration time of each local user. */
  #local = new Map<string, number>();
  /** Peers' users by name. */
  #remote = new Map<string, Mirror<U>>();
  #next = 1;
  /** The id a local INVITE claimed; the id of a peer's INVITE being replayed; the last id used. */
  #reserved?: number;
  #replaying?: number;
  #taken?: number;
  #logger: Logger;

  /** Connects to NATS in the background. */
  constructor(options: ImClusterOptions, target: ImClusterTarget<U>) {
    this.#target = target;
    this.#logger = options.logger;
    this.#cluster = new Cluster<Event, Snapshot>({
      servers: options.servers,
      prefix: "parley.im",
      timeoutMs: options.timeoutMs,
      logger: options.logger,
      snapshot: () => ({
        next: this.#next,
        users: target.localUsers().map(([n, s, c]) => [n, s, this.#local.get(n) ?? 0, c]),
      }),
      onEvent: (peer, event) => this.#onEvent(peer, event),
      onSnapshot: (peer, snapshot) => this.#onSnapshot(peer, snapshot),
      onPeerLost: (peer) => this.#onPeerLost(peer),
      holds: (key) =>
        key.startsWith("u:")
          ? target.hasUser(key.slice(2))
          : Number(key.slice(2)) < this.#next || target.hasConversation(Number(key.slice(2))),
    });
  }

  /** The underlying cluster link (for tests and logs). */
  get link(): Cluster<Event, Snapshot> {
    return this.#cluster;
  }

  /** Asks the cluster for `name`; false when an instance has it (or wins it). */
  claimName(name: string): Promise<boolean> {
    return this.#cluster.claim(`u:${name}`);
  }

  /** A local user registered. */
  registered(name: string, status: string): void {
    const at = performance.timeOrigin + performance.now(); // wall clock, finer than 1 ms
    this.#local.set(name, at);
    this.#cluster.publish({ t: "reg", u: name, s: status, at });
  }

  /** A local user went offline. */
  offline(name: string): void {
    if (this.#local.delete(name)) this.#cluster.publish({ t: "off", u: name });
  }

  /**
   * Before a local user's command runs: a command naming a user or conversation not known here,
   * and LIST_CONVERSATIONS, first sync with every peer (so they see what the peers had done
   * before); an INVITE gets a conversation id free everywhere.
   */
  async before(message: ImClientMessage): Promise<void> {
    const t = this.#target;
    const unknown = message.command === "LIST_CONVERSATIONS" ||
      (message.command === "INVITE" && message.users.some((u) => !t.hasUser(u))) ||
      ((message.command === "JOIN" || message.command === "SEND_MESSAGE" ||
        message.command === "LEAVE") && !t.hasConversation(Number(message.conversation)));
    if (unknown) await this.#cluster.sync();
    this.#taken = undefined;
    if (message.command !== "INVITE") return;
    let id = this.#next;
    for (let tries = 0; tries < 5 && !(await this.#cluster.claim(`c:${id}`)); tries++) {
      id = Math.max(id + 1, this.#next);
    }
    this.#reserve(id);
  }

  /** The id for the conversation an INVITE creates (reserved by {@link ImCluster.before}). */
  takeId(): number {
    const id = this.#replaying ?? this.#reserved ?? this.#next;
    if (this.#replaying === undefined) this.#reserved = undefined;
    this.#next = Math.max(this.#next, id + 1);
    if (this.#replaying === undefined) this.#taken = id;
    return id;
  }

  /** After a local user's command ran: peers replay the ones that change shared state. */
  after(name: string, message: ImClientMessage): void {
    if (!REPLAYED.has(message.command)) return;
    if (message.command === "INVITE") {
      // An INVITE the server refused (a limit) created no conversation: nothing to replay.
      const id = this.#taken;
      this.#taken = undefined;
      if (id === undefined) return;
      const users = this.#target.invited(id).filter((u) => u !== name);
      this.#cluster.publish({ t: "do", u: name, m: { command: "INVITE", users }, id });
    } else this.#cluster.publish({ t: "do", u: name, m: message });
  }

  /** Says goodbye to the cluster and closes the NATS connection. */
  close(): Promise<void> {
    return this.#cluster.close();
  }

  #reserve(id: number) {
    this.#reserved = id;
    this.#next = Math.max(this.#next, id + 1);
  }

  #status(mirror: Mirror<U>, status: string) {
    if (mirror.status === status) return;
    mirror.status = status;
    this.#target.act(mirror.user, { command: "STATUS", status });
  }

  /** Adds a peer's user, settling a name both sides gave away (the earlier registration wins). */
  #add(peer: string, name: string, status: string, at: number): Mirror<U> | undefined {
    const mine = this.#local.get(name);
    const held = this.#remote.get(name);
    if (held?.peer === peer) return held;
    const rival = mine !== undefined ? { at: mine, peer: this.#cluster.id } : held;
    if (rival && (rival.at < at || (rival.at === at && rival.peer < peer))) return undefined;
    if (mine !== undefined) {
      this.#logger.warning("{name} was registered on two instances; the earlier keeps it", {
        name,
      });
      this.#target.evict(name);
      this.offline(name);
    } else if (held) {
      this.#remote.delete(name);
      this.#target.removeRemote(held.user);
    }
    const user = this.#target.addRemote(name, status);
    if (!user) return undefined;
    const mirror = { peer, user, at, status };
    this.#remote.set(name, mirror);
    return mirror;
  }

  #drop(peer: string, name: string) {
    const mirror = this.#remote.get(name);
    if (mirror?.peer !== peer) return;
    this.#remote.delete(name);
    this.#target.removeRemote(mirror.user);
  }

  #onEvent(peer: string, event: Event) {
    switch (event.t) {
      case "reg":
        this.#add(peer, event.u, event.s, event.at);
        return;
      case "off":
        return this.#drop(peer, event.u);
      case "do": {
        const mirror = this.#remote.get(event.u);
        if (mirror?.peer !== peer) return;
        if (event.m.command === "STATUS") return this.#status(mirror, event.m.status);
        this.#replaying = event.id;
        if (event.id !== undefined) this.#next = Math.max(this.#next, event.id + 1);
        this.#target.act(mirror.user, event.m);
        this.#replaying = undefined;
        return;
      }
    }
  }

  #onSnapshot(peer: string, snapshot: Snapshot) {
    this.#next = Math.max(this.#next, snapshot.next);
    const names = new Set(snapshot.users.map(([name]) => name));
    for (const [name, mirror] of [...this.#remote]) {
      if (mirror.peer === peer && !names.has(name)) this.#drop(peer, name);
    }
    for (const [name, status, at, conversations] of snapshot.users) {
      const mirror = this.#add(peer, name, status, at);
      if (!mirror) continue;
      this.#status(mirror, status);
      const ids = new Set(conversations.map(([id]) => id));
      for (const id of this.#target.memberships(mirror.user)) {
        if (!ids.has(id)) this.#target.act(mirror.user, { command: "LEAVE", conversation: id });
      }
      for (const [id, invited] of conversations) {
        this.#next = Math.max(this.#next, id + 1);
        this.#target.restore(mirror.user, id, invited);
      }
    }
  }

  #onPeerLost(peer: string) {
    for (const [name, mirror] of [...this.#remote]) {
      if (mirror.peer === peer) this.#drop(peer, name);
    }
  }
}
