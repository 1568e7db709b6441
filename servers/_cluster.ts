/**
 * The cluster link shared by the channel and IM servers (SPEC.md 8.2): one NATS
 * connection per instance, heartbeats, the peer table, snapshots and name
 * claims. What an event or a snapshot means is the business of the
 * server-specific modules (`_channel_cluster.ts`, `_im_cluster.ts`).
 *
 * Subjects (`P` is `parley.channel` or `parley.im`):
 *
 * - `P.ev.<instance>`: everything an instance says to the others, in the order it
 *   says it: events about its own clients, heartbeats, `hello`, snapshots,
 *   claims and `bye`. One publisher connection and one subject per instance,
 *   received through one subscription, so NATS keeps its order.
 * - `P.to.<instance>`: replies to that instance's claims.
 *
 * Each instance owns its own clients and their state; the others hold a mirror
 * of it, built from the snapshot the owner publishes when any instance says
 * `hello`, and kept current by the owner's events. An instance says `hello`
 * (and publishes its snapshot) when it connects or reconnects to NATS, and when
 * it hears from a peer it does not know.
 *
 * @module
 */

import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "@logtape/logtape";
import {
  type FlagSpec,
  millisecondsFromSeconds,
  type ParsedCli,
  UsageError,
} from "../cli/command.ts";

/** Options of {@link Cluster}. */
export interface ClusterOptions<E, S> {
  /** NATS URLs (`nats://host:port`); the client fails over and reconnects between them. */
  servers: string[];
  /** The subject prefix: `parley.channel`, `parley.im`. */
  prefix: string;
  /** A peer silent for this long is gone (ms). */
  timeoutMs: number;
  /** Where connection changes and peers coming and going are logged. */
  logger: Logger;
  /** This instance's owned state, for a snapshot. */
  snapshot(): S;
  /** A peer's event, in the order the peer published it. */
  onEvent(peer: string, event: E): void;
  /** A peer's whole state (replaces what was known of it). */
  onSnapshot(peer: string, snapshot: S): void;
  /** A peer that said `bye` or fell silent: drop everything it owned. */
  onPeerLost(peer: string): void;
  /** True when this instance refuses a claim on `key` (it holds it). */
  holds?(key: string): boolean;
}

/** What travels on `P.ev.<instance>`. */
type Wire<E, S> =
  | { k: "hb" }
  | { k: "hello" }
  | { k: "bye" }
  | { k: "s"; part: string; more: boolean }
  | { k: "e"; e: E }
  | { k: "claim"; key: string; n: number }
  | { k: "done"; key: string }
  | { k: "sync"; n: number };

/** What travels on `P.to.<instance>`. */
type Reply = { k: "claimed" | "synced"; n: number; ok: boolean; from: string };

/** Characters of snapshot JSON per message: at most 800 KB of UTF-8, under NATS's 1 MB default. */
const SNAPSHOT_PART = 200_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Milliseconds a claim waits for its answers; a peer that has not answered by then is ignored. */
const CLAIM_WAIT_MS = 1000;

/**
 * One instance's link to the cluster. Never throws at its users: while NATS is
 * unreachable it keeps trying, {@link Cluster.publish} drops events (the
 * snapshot after the reconnect replaces them) and {@link Cluster.claim} grants
 * every claim locally.
 */
export class Cluster<E, S> {
  /** This instance's id (random, unique per process). */
  readonly id: string = crypto.randomUUID().slice(0, 13);
  #options: ClusterOptions<E, S>;
  #nc?: NatsConnection;
  #connected = false;
  #closed = false;
  #peers = new Map<string, number>();
  #timers: ReturnType<typeof setInterval>[] = [];
  #claims = new Map<
    number,
    { key: string; waiting: Set<string>; done: (ok: boolean) => void }
  >();
  #claimSeq = 0;
  /** Keys granted to a peer whose claim may still be under way: the winning grantee, until when. */
  #granted = new Map<string, { peer: string; until: number }>();
  #started: Promise<void>;
  /** Snapshot parts received so far, by peer. */
  #parts = new Map<string, string>();
  #lastHello = 0;

  /** Starts connecting in the background; the instance serves its own clients meanwhile. */
  constructor(options: ClusterOptions<E, S>) {
    this.#options = options;
    const beat = Math.max(20, options.timeoutMs / 5);
    this.#timers.push(setInterval(() => this.#send({ k: "hb" }), beat));
    this.#timers.push(setInterval(() => this.#expire(), Math.max(10, options.timeoutMs / 10)));
    this.#started = this.#connectLoop();
  }

  /** True while the NATS connection is up. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Ids of the peers heard from within the timeout. */
  peers(): string[] {
    return [...this.#peers.keys()];
  }

  /** Publishes an event about this instance's own clients (dropped while NATS is down). */
  publish(event: E): void {
    this.#send({ k: "e", e: event });
  }

  /**
   * Asks every known peer whether `key` is free; resolves false when one holds
   * it or has a claim on it that wins (the lower instance id wins). Without
   * NATS or peers, every claim is granted.
   */
  claim(key: string): Promise<boolean> {
    if (this.#recentlyGranted(key)) return Promise.resolve(false);
    if (!this.#connected || this.#peers.size === 0) return Promise.resolve(true);
    const n = ++this.#claimSeq;
    const { promise, resolve } = Promise.withResolvers<boolean>();
    const timer = setTimeout(() => finish(true), CLAIM_WAIT_MS);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      this.#claims.delete(n);
      resolve(ok);
      // After the caller's continuation has published what it did with the key (a timer runs
      // after every promise reaction): the peers may forget they granted it.
      setTimeout(() => this.#send({ k: "done", key }), 0);
    };
    this.#claims.set(n, { key, waiting: new Set(this.#peers.keys()), done: finish });
    this.#send({ k: "claim", key, n });
    return promise;
  }

  /**
   * Resolves once every known peer has answered a `sync` sent now: everything those peers
   * published before they saw it has then been applied here (NATS keeps one publisher's order,
   * and both subjects are handled in arrival order). A read after it sees every write the
   * peers had made. Immediate without NATS or peers.
   */
  sync(): Promise<void> {
    if (!this.#connected || this.#peers.size === 0) return Promise.resolve();
    const n = ++this.#claimSeq;
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(() => finish(), CLAIM_WAIT_MS);
    const finish = () => {
      clearTimeout(timer);
      this.#claims.delete(n);
      resolve();
    };
    this.#claims.set(n, { key: "", waiting: new Set(this.#peers.keys()), done: finish });
    this.#send({ k: "sync", n });
    return promise;
  }

  /** Says `bye` (peers drop this instance's clients at once) and closes the NATS connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    for (const claim of [...this.#claims.values()]) claim.done(true);
    const nc = this.#nc;
    if (nc && this.#connected) {
      this.#send({ k: "bye" });
      await nc.flush().catch(() => {});
    }
    await nc?.close().catch(() => {});
    await this.#started;
  }

  #send(message: Wire<E, S>) {
    if (!this.#connected || this.#closed) return;
    try {
      this.#nc!.publish(
        `${this.#options.prefix}.ev.${this.id}`,
        encoder.encode(JSON.stringify(message)),
      );
    } catch (error) {
      this.#options.logger.debug("Cluster publish failed: {error}", { error: String(error) });
    }
  }

  async #connectLoop(): Promise<void> {
    const { servers, logger } = this.#options;
    while (!this.#closed && !this.#nc) {
      try {
        this.#nc = await connect({
          servers,
          name: `${this.#options.prefix}.${this.id}`,
          noEcho: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          reconnectJitter: 100,
          pingInterval: 2000,
          maxPingOut: 2,
          timeout: 2000,
        });
      } catch (error) {
        logger.warning("NATS at {servers} unreachable ({error}); serving local clients only", {
          servers: servers.join(","),
          error: String(error),
        });
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const nc = this.#nc;
    if (!nc) return;
    if (this.#closed) {
      await nc.close().catch(() => {});
      return;
    }
    // Callbacks run as the client parses, so both subjects are handled in the order NATS sent them.
    const callback = (error: Error | null, m: Msg) => {
      if (!error) this.#handle(m);
    };
    nc.subscribe(`${this.#options.prefix}.ev.*`, { callback });
    nc.subscribe(`${this.#options.prefix}.to.${this.id}`, { callback });
    this.#online();
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        this.#connected = false;
        logger.warning("NATS connection lost; serving local clients only");
      } else if (status.type === "reconnect") {
        logger.info("NATS connection back");
        this.#online();
      }
    }
    this.#connected = false;
  }

  #online() {
    this.#connected = true;
    this.#options.logger.info("Cluster instance {id} joined through NATS", { id: this.id });
    this.#hello();
  }

  #hello() {
    this.#lastHello = performance.now();
    this.#send({ k: "hello" });
    this.#sendSnapshot();
  }

  /** The snapshot as JSON, in as many parts as it needs (one, usually), back to back. */
  #sendSnapshot() {
    const json = JSON.stringify(this.#options.snapshot());
    for (let i = 0; i < json.length || i === 0; i += SNAPSHOT_PART) {
      const more = i + SNAPSHOT_PART < json.length;
      this.#send({ k: "s", part: json.slice(i, i + SNAPSHOT_PART), more });
    }
  }

  #handle(m: Msg) {
    try {
      const body = JSON.parse(decoder.decode(m.data));
      if (body.k === "claimed" || body.k === "synced") this.#reply(body as Reply);
      else this.#receive(m.subject.slice(m.subject.lastIndexOf(".") + 1), body);
    } catch (error) {
      this.#options.logger.error("Bad cluster message on {subject}: {error}", {
        subject: m.subject,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
    }
  }

  #receive(peer: string, message: Wire<E, S>) {
    if (peer === this.id || this.#closed) return;
    if (message.k === "bye") return this.#lose(peer, "left");
    const known = this.#peers.has(peer);
    this.#peers.set(peer, performance.now());
    if (!known) {
      this.#options.logger.info("Cluster peer {peer} seen", { peer });
      // A peer we do not know (new, or back from a partition) gets our state, and sends its own.
      if (message.k !== "hello" && performance.now() - this.#lastHello > 100) this.#hello();
    }
    switch (message.k) {
      case "hello":
        return this.#sendSnapshot();
      case "s": {
        const json = (this.#parts.get(peer) ?? "") + message.part;
        if (message.more) return void this.#parts.set(peer, json);
        this.#parts.delete(peer);
        return this.#options.onSnapshot(peer, JSON.parse(json));
      }
      case "e":
        return this.#options.onEvent(peer, message.e);
      case "claim":
        return this.#answerClaim(peer, message.key, message.n);
      case "done":
        return void this.#granted.delete(message.key);
      case "sync":
        return this.#answer(peer, { k: "synced", n: message.n, ok: true, from: this.id });
    }
  }

  #answerClaim(peer: string, key: string, n: number) {
    // The lower instance id wins between two claims under way: ours, or one granted before.
    const mine = [...this.#claims.values()].some((c) => c.key === key);
    const grantee = this.#recentlyGranted(key) ? this.#granted.get(key)!.peer : undefined;
    const ok = !(this.#options.holds?.(key) ?? false) && !(mine && this.id < peer) &&
      !(grantee !== undefined && grantee < peer);
    if (ok) this.#granted.set(key, { peer, until: performance.now() + 2 * CLAIM_WAIT_MS });
    this.#answer(peer, { k: "claimed", n, ok, from: this.id });
  }

  #answer(peer: string, reply: Reply) {
    if (!this.#connected) return;
    this.#nc?.publish(`${this.#options.prefix}.to.${peer}`, encoder.encode(JSON.stringify(reply)));
  }

  #recentlyGranted(key: string): boolean {
    const until = this.#granted.get(key)?.until;
    if (until === undefined) return false;
    if (until > performance.now()) return true;
    this.#granted.delete(key);
    return false;
  }

  #reply(reply: Reply) {
    const claim = this.#claims.get(reply.n);
    if (!claim) return;
    if (!reply.ok) return claim.done(false);
    claim.waiting.delete(reply.from);
    if ([...claim.waiting].every((p) => !this.#peers.has(p))) claim.done(true);
  }

  #expire() {
    const limit = performance.now() - this.#options.timeoutMs * 0.8;
    for (const [peer, seen] of this.#peers) if (seen < limit) this.#lose(peer, "timed out");
    for (const [key, { until }] of this.#granted) {
      if (until < performance.now()) this.#granted.delete(key);
    }
  }

  #lose(peer: string, why: string) {
    const known = this.#peers.delete(peer);
    this.#parts.delete(peer);
    if (known) this.#options.logger.info("Cluster peer {peer} {why}", { peer, why });
    this.#options.onPeerLost(peer);
    for (const claim of [...this.#claims.values()]) {
      claim.waiting.delete(peer);
      if ([...claim.waiting].every((p) => !this.#peers.has(p))) claim.done(true);
    }
  }
}

/** The connection of a peer's client mirrored on this instance: sending to it does nothing. */
export const NO_CONNECTION = {
  send: (_bytes: Uint8Array): boolean => true,
  end: (): Promise<void> => Promise.resolve(),
};

/** The flags of a server that can join a cluster: `--nats`, `--cluster-timeout`. */
export const CLUSTER_FLAGS: Record<string, FlagSpec> = {
  nats: {
    type: "string",
    value: "URL[,URL...]",
    description: "join the cluster of instances sharing this NATS system [default: none, alone]",
  },
  "cluster-timeout": {
    type: "string",
    default: "5",
    value: "SECONDS",
    description: "a cluster peer silent this long has lost its clients",
  },
};

/** Reads the cluster flags: NATS URLs (undefined when `--nats` is empty) and the timeout in ms. */
export function clusterValues(
  values: ParsedCli["values"],
): { nats?: string[]; clusterTimeoutMs: number } {
  const list = String(values.nats ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const url of list) {
    if (!/^(nats|tls|wss?):\/\/[^\s/]+(:\d+)?\/?$|^[\w.-]+:\d+$/.test(url)) {
      throw new UsageError(`--nats takes URLs like nats://127.0.0.1:4222, got '${url}'`);
    }
  }
  const clusterTimeoutMs = millisecondsFromSeconds(
    values["cluster-timeout"] ?? "5",
    "cluster-timeout",
  );
  if (clusterTimeoutMs < 100) throw new UsageError("--cluster-timeout must be at least 0.1");
  return { nats: list.length > 0 ? list : undefined, clusterTimeoutMs };
}
