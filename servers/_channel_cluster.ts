/**
 * The channel server's part of the cluster (SPEC.md 8.2): each instance
 * publishes what its own members do (enter a channel, leave, chat) and mirrors
 * every peer's members as members without a connection, so `/list`, notices
 * and chats work on one namespace.
 *
 * Ownership: a member belongs to the instance it is connected to; that
 * instance is the only one that publishes about it. A channel belongs to
 * nobody: it exists on an instance while any member, local or mirrored, is in
 * it, and `/list` orders channels by the creation stamp `[ms, instance]` that
 * travels with every `enter`. Two instances that create the same name at the
 * same moment both succeed and get one channel (as if the second had joined).
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { encodeChannelFrame, parseChannelCommand } from "../protocols/channel.ts";
import { Cluster } from "./_cluster.ts";

/** What the cluster needs from the channel server to apply peers' members. */
export interface ChannelClusterTarget<M> {
  /** A member with no connection, for a peer's client called `name`. */
  remoteMember(name: string): M;
  /** Moves `member` into `channel` (created if missing), with the usual notices. */
  enter(member: M, channel: string): void;
  /** Takes `member` out of its channel, with the usual notice. */
  leave(member: M): void;
  /** Delivers a chat frame from `member` to the other members of its channel. */
  chat(member: M, frame: Uint8Array): void;
  /** True while a channel of that name exists here (stamps of removed channels are dropped). */
  exists(channel: string): boolean;
}

/** Options of {@link ChannelCluster}. */
export interface ChannelClusterOptions {
  /** NATS URLs. */
  servers: string[];
  /** `--cluster-timeout` in ms. */
  timeoutMs: number;
  /** The server's logger. */
  logger: Logger;
}

type Stamp = [number, string];
type Event =
  | { t: "enter"; m: number; name: string; ch: string; c: Stamp }
  | { t: "leave"; m: number }
  | { t: "chat"; m: number; line: string };
/** A peer's members in channels: `[member, name, channel, stamp]`. */
type Snapshot = [number, string, string, Stamp][];

interface Mirrored<M> {
  member: M;
  name: string;
  channel?: string;
}

const before = (a: Stamp, b: Stamp) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

/** One channel server's link to its cluster. */
export class ChannelCluster<M extends object> {
  #target: ChannelClusterTarget<M>;
  #cluster: Cluster<Event, Snapshot>;
  #ids = new WeakMap<M, number>();
  #nextId = 1;
  /** Local members in a channel: id -> [name, channel]. */
  #local = new Map<number, [string, string]>();
  /** Peers' members: peer -> member id -> mirror. */
  #remote = new Map<string, Map<number, Mirrored<M>>>();
  #stamps = new Map<string, Stamp>();
  #pruneAt = 256;

  /** Connects to NATS in the background. */
  constructor(options: ChannelClusterOptions, target: ChannelClusterTarget<M>) {
    this.#target = target;
    this.#cluster = new Cluster<Event, Snapshot>({
      servers: options.servers,
      prefix: "parley.channel",
      timeoutMs: options.timeoutMs,
      logger: options.logger,
      snapshot: () => this.#snapshot(),
      onEvent: (peer, event) => this.#onEvent(peer, event),
      onSnapshot: (peer, snapshot) => this.#onSnapshot(peer, snapshot),
      onPeerLost: (peer) => this.#onPeerLost(peer),
    });
  }

  /** The underlying cluster link (for tests and logs). */
  get link(): Cluster<Event, Snapshot> {
    return this.#cluster;
  }

  /** A local member entered `channel` (`created`: by its own `/create`). */
  entered(member: M, name: string, channel: string, created: boolean): void {
    const id = this.#idOf(member);
    if (created || !this.#stamps.has(channel)) {
      this.#setStamp(channel, [performance.timeOrigin + performance.now(), this.#cluster.id]);
    }
    this.#local.set(id, [name, channel]);
    this.#cluster.publish({ t: "enter", m: id, name, ch: channel, c: this.#stamp(channel) });
  }

  /** A local member left its channel (disconnected). */
  left(member: M): void {
    const id = this.#ids.get(member);
    if (id === undefined || !this.#local.delete(id)) return;
    this.#cluster.publish({ t: "leave", m: id });
  }

  /** A local member's chat line (`[NAME] text`), already delivered locally. */
  chatted(member: M, line: string): void {
    const id = this.#ids.get(member);
    if (id !== undefined) this.#cluster.publish({ t: "chat", m: id, line });
  }

  /**
   * Before a local control message: `/create`, `/list`, and `/join` of a channel not known here
   * wait until every peer has answered a sync, so they see what the peers had done before (a
   * channel created elsewhere a moment ago). Chats and other joins go straight on.
   */
  async settle(text: string, channels: { has(name: string): boolean }): Promise<void> {
    const command = parseChannelCommand(text);
    if (
      command.kind === "list" || command.kind === "create" ||
      (command.kind === "join" && command.channel !== "" && !channels.has(command.channel))
    ) await this.#cluster.sync();
  }

  /** Channel names in cluster creation order. */
  order(names: string[]): string[] {
    const known = new Set(names);
    for (const name of this.#stamps.keys()) if (!known.has(name)) this.#stamps.delete(name);
    return names.map((n, i) => [n, this.#stamps.get(n) ?? [Infinity, String(i)]] as const)
      .sort((a, b) => before(a[1], b[1]) ? -1 : before(b[1], a[1]) ? 1 : 0).map(([n]) => n);
  }

  /** Says goodbye to the cluster and closes the NATS connection. */
  close(): Promise<void> {
    return this.#cluster.close();
  }

  #snapshot(): Snapshot {
    return [...this.#local].map(([m, [name, ch]]) => [m, name, ch, this.#stamp(ch)]);
  }

  #idOf(member: M): number {
    let id = this.#ids.get(member);
    if (id === undefined) this.#ids.set(member, id = this.#nextId++);
    return id;
  }

  #setStamp(channel: string, stamp: Stamp) {
    this.#stamps.set(channel, stamp);
    if (this.#stamps.size <= this.#pruneAt) return;
    for (const name of this.#stamps.keys()) {
      if (name !== channel && !this.#target.exists(name)) this.#stamps.delete(name);
    }
    this.#pruneAt = Math.max(256, 2 * this.#stamps.size);
  }

  #stamp(channel: string): Stamp {
    return this.#stamps.get(channel) ??
      [performance.timeOrigin + performance.now(), this.#cluster.id];
  }

  #members(peer: string): Map<number, Mirrored<M>> {
    let members = this.#remote.get(peer);
    if (!members) this.#remote.set(peer, members = new Map());
    return members;
  }

  #enter(peer: string, id: number, name: string, channel: string, stamp: Stamp) {
    const members = this.#members(peer);
    let mirror = members.get(id);
    if (!mirror) members.set(id, mirror = { member: this.#target.remoteMember(name), name });
    if (mirror.channel === channel) return;
    const known = this.#stamps.get(channel);
    if (!known || before(stamp, known)) this.#setStamp(channel, stamp);
    mirror.channel = channel;
    this.#target.enter(mirror.member, channel);
  }

  #leave(members: Map<number, Mirrored<M>>, id: number) {
    const mirror = members.get(id);
    if (!mirror) return;
    members.delete(id);
    this.#target.leave(mirror.member);
  }

  #onEvent(peer: string, event: Event) {
    switch (event.t) {
      case "enter":
        return this.#enter(peer, event.m, event.name, event.ch, event.c);
      case "leave":
        return this.#leave(this.#members(peer), event.m);
      case "chat": {
        const mirror = this.#remote.get(peer)?.get(event.m);
        if (mirror?.channel) this.#target.chat(mirror.member, encodeChannelFrame(event.line));
        return;
      }
    }
  }

  #onSnapshot(peer: string, snapshot: Snapshot) {
    const members = this.#members(peer);
    const present = new Set(snapshot.map(([m]) => m));
    for (const id of [...members.keys()]) if (!present.has(id)) this.#leave(members, id);
    for (const [m, name, ch, stamp] of snapshot) this.#enter(peer, m, name, ch, stamp);
  }

  #onPeerLost(peer: string) {
    const members = this.#remote.get(peer);
    if (!members) return;
    this.#remote.delete(peer);
    for (const id of [...members.keys()]) this.#leave(members, id);
  }
}
