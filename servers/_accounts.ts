/**
 * Directory accounts: an embedded SQLite store of salted scrypt hashes, and
 * the login throttle. No plaintext password is ever stored or logged.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

/** Default scrypt cost, as log2 of N (N = 32768, r = 8, p = 1: about 32 MiB and 75 ms). */
export const DEFAULT_HASH_COST = 15;
const KEY_BYTES = 32;

/** Hashes computed at once by default (each costs 128 * N * r bytes of memory; SPEC.md 6.5). */
export const DEFAULT_HASH_CONCURRENCY = 4;
/** Hashes that may wait for a turn by default; more are refused as busy (SPEC.md 6.5). */
export const DEFAULT_HASH_QUEUE = 64;

/** The hash queue is full: the caller should answer "server busy". */
export class HashQueueFullError extends Error {
  /** Makes the error. */
  constructor() {
    super("hash queue is full");
    this.name = "HashQueueFullError";
  }
}

/** Options of a {@link HashQueue}. */
export interface HashQueueOptions {
  /** Tasks run at once (default 4). */
  concurrency?: number;
  /** Tasks that may wait, first in first out (default 64). */
  maxWaiting?: number;
}

/**
 * Runs expensive tasks (password hashes) at most `concurrency` at once, with a
 * bounded FIFO queue behind them. A task whose signal aborts while it waits
 * leaves the queue and never runs; past the queue, {@link HashQueueFullError}.
 *
 * @example
 * ```ts
 * import { HashQueue } from "./_accounts.ts";
 * const queue = new HashQueue({ concurrency: 1, maxWaiting: 1 });
 * const result = await queue.run(() => Promise.resolve(42));
 * console.assert(result === 42);
 * ```
 */
export class HashQueue {
  #concurrency: number;
  #maxWaiting: number;
  #running = 0;
  #waiting: { start: () => void; abort: () => void }[] = [];
  /** Tasks started so far (tests check that aborted ones never ran). */
  started = 0;

  /** Makes a queue. */
  constructor(options: HashQueueOptions = {}) {
    this.#concurrency = options.concurrency ?? DEFAULT_HASH_CONCURRENCY;
    this.#maxWaiting = options.maxWaiting ?? DEFAULT_HASH_QUEUE;
  }

  /** Tasks waiting for a turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Runs `task` when a slot is free; rejects with the signal's reason if it aborts first. */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    // A finishing task hands its slot straight to the first waiter, so nobody can jump the queue.
    if (this.#running < this.#concurrency) this.#running++;
    else await this.#wait(signal);
    this.started++;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next.start();
      else this.#running--;
    }
  }

  #wait(signal?: AbortSignal): Promise<void> {
    if (this.#waiting.length >= this.#maxWaiting) throw new HashQueueFullError();
    return new Promise<void>((resolve, reject) => {
      const entry = {
        start: () => {
          signal?.removeEventListener("abort", entry.abort);
          resolve();
        },
        abort: () => {
          this.#waiting.splice(this.#waiting.indexOf(entry), 1);
          reject(signal!.reason);
        },
      };
      signal?.addEventListener("abort", entry.abort, { once: true });
      this.#waiting.push(entry);
    });
  }
}

function scryptOnce(password: string, salt: Uint8Array, cost: number): Promise<Uint8Array> {
  const N = 2 ** cost;
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_BYTES, { N, r: 8, p: 1, maxmem: 256 * N * 8 }, (error, key) => {
      if (error) reject(error);
      else resolve(new Uint8Array(key));
    })
  );
}

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const unb64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/**
 * Hashes a password as `scrypt$<cost>$<salt>$<hash>` (base64), with a fresh
 * 16-byte salt. Runs off the event loop.
 *
 * @example
 * ```ts
 * import { hashPassword, verifyPassword } from "./_accounts.ts";
 * const stored = await hashPassword("secret", 10);
 * console.assert(await verifyPassword("secret", stored));
 * ```
 */
export async function hashPassword(password: string, cost = DEFAULT_HASH_COST): Promise<string> {
  const salt = new Uint8Array(randomBytes(16));
  return `scrypt$${cost}$${b64(salt)}$${b64(await scryptOnce(password, salt, cost))}`;
}

/** Checks a password against a stored hash in constant time. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, cost, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = unb64(hash);
  const actual = await scryptOnce(password, unb64(salt), Number(cost));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Options of an {@link AccountStore}. */
export interface AccountStoreOptions {
  /** scrypt cost as log2 N (default 15). */
  cost?: number;
  /** Where every hash of this store waits its turn (default: 4 at once, 64 waiting). */
  queue?: HashQueue;
}

/** The account table in a SQLite file (or `:memory:`). Every hash goes through one {@link HashQueue}. */
export class AccountStore {
  #db: DatabaseSync;
  #cost: number;
  /** The queue every hash of this store waits in. */
  readonly queue: HashQueue;
  /** A hash to verify against when the name is unknown, so timing does not reveal it. */
  #decoy?: string;

  /** Opens (creating if needed) the database at `path`. */
  constructor(path: string, options: AccountStoreOptions = {}) {
    this.#db = new DatabaseSync(path);
    this.#cost = options.cost ?? DEFAULT_HASH_COST;
    this.queue = options.queue ?? new HashQueue();
    this.#db.exec(`CREATE TABLE IF NOT EXISTS accounts (
      name TEXT PRIMARY KEY,
      password_hash TEXT NOT NULL,
      created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
    )`);
  }

  /** The stored hash of `name`, if the account exists. */
  hashOf(name: string): string | undefined {
    const row = this.#db.prepare("SELECT password_hash FROM accounts WHERE name = ?").get(name);
    return row ? String(row.password_hash) : undefined;
  }

  /** True if the account exists. */
  has(name: string): boolean {
    return this.hashOf(name) !== undefined;
  }

  /** Creates an account; false if the name is taken. */
  async add(name: string, password: string, signal?: AbortSignal): Promise<boolean> {
    const hash = await this.queue.run(() => hashPassword(password, this.#cost), signal);
    const result = this.#db.prepare(
      "INSERT OR IGNORE INTO accounts (name, password_hash) VALUES (?, ?)",
    )
      .run(name, hash);
    return Number(result.changes) === 1;
  }

  /** Deletes an account; false if there was none. */
  remove(name: string): boolean {
    return Number(this.#db.prepare("DELETE FROM accounts WHERE name = ?").run(name).changes) === 1;
  }

  /**
   * Checks a login. With `create`, an unknown name is created with this
   * password. Unknown names still cost one hash, so both paths take as long.
   * The hash waits its turn in {@link AccountStore.queue}: a `signal` that
   * aborts while it waits means it is never computed.
   *
   * @throws {HashQueueFullError} when the queue is full.
   */
  async login(
    name: string,
    password: string,
    create: boolean,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const stored = this.hashOf(name);
    if (stored !== undefined) {
      return await this.queue.run(() => verifyPassword(password, stored), signal);
    }
    if (create) {
      return await this.add(name, password, signal) ||
        await this.login(name, password, false, signal);
    }
    return await this.queue.run(async () => {
      this.#decoy ??= await hashPassword(crypto.randomUUID(), this.#cost);
      await verifyPassword(password, this.#decoy);
      return false;
    }, signal);
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }
}

/** Options of a {@link LoginThrottle}. */
export interface LoginThrottleOptions {
  /** Failures of one name from one address before that pair is refused (default 5). */
  maxFailures?: number;
  /** Failures from one address, any names, before that address is refused (default 20). */
  maxAddressFailures?: number;
  /** How long failures are remembered and a lockout lasts, in ms. */
  windowMs?: number;
  /** The clock (tests inject one). */
  now?: () => number;
}

/** Tracked keys at which the throttle first drops the ones whose failures aged out. */
const SWEEP_AT = 4096;

interface Tally {
  failures: number[];
  inFlight: number;
}

/** Who is logging in: the peer's address and the name it gave. */
export interface LoginAttempt {
  /** The peer's IP address. */
  address: string;
  /** The user name. */
  name: string;
}

/**
 * Counts failed logins per address and per (address, name), never per name
 * alone (SPEC.md 6.5): a stranger can lock out only itself, never an account.
 * Once a key reaches its limit within the window, attempts are refused until
 * its oldest failure ages out. Successes are never counted, so a busy but
 * honest client is never refused.
 *
 * Attempts in progress count too, so parallel guesses cannot start more hash
 * computations than the limit allows: for an (address, name) pair always, and
 * for an address once it has failed at least once (an address with no
 * failures, such as a gateway logging many users in at once, is never held
 * back).
 */
export class LoginThrottle {
  #tallies = new Map<string, Tally>();
  #sweepAt = SWEEP_AT;
  #maxPair: number;
  #maxAddress: number;
  #window: number;
  #now: () => number;

  /** Makes a throttle. */
  constructor(options: LoginThrottleOptions = {}) {
    this.#maxPair = options.maxFailures ?? 5;
    this.#maxAddress = options.maxAddressFailures ?? 20;
    this.#window = options.windowMs ?? 60_000;
    this.#now = options.now ?? (() => performance.now());
  }

  #keys(attempt: LoginAttempt): { key: string; max: number; pair: boolean }[] {
    return [
      { key: `addr ${attempt.address}`, max: this.#maxAddress, pair: false },
      { key: `pair ${attempt.address} ${attempt.name}`, max: this.#maxPair, pair: true },
    ];
  }

  #tally(key: string): Tally {
    let tally = this.#tallies.get(key);
    if (!tally) this.#tallies.set(key, tally = { failures: [], inFlight: 0 });
    const cutoff = this.#now() - this.#window;
    while (tally.failures.length && tally.failures[0] <= cutoff) tally.failures.shift();
    return tally;
  }

  /** Drops a key that holds nothing any more. */
  #tidy(key: string, tally: Tally): void {
    if (tally.failures.length === 0 && tally.inFlight === 0) this.#tallies.delete(key);
  }

  /** Drops every key whose failures have aged out, so a stream of made-up names cannot grow the map. */
  #sweep(): void {
    for (const key of [...this.#tallies.keys()]) this.#tidy(key, this.#tally(key));
    this.#sweepAt = Math.max(SWEEP_AT, this.#tallies.size * 2);
  }

  /**
   * Starts an attempt. Returns the seconds to wait if refused, or 0 if the
   * attempt may go ahead (then call {@link LoginThrottle.finish}).
   */
  begin(attempt: LoginAttempt): number {
    if (this.#tallies.size >= this.#sweepAt) this.#sweep();
    const keys = this.#keys(attempt);
    let wait = 0;
    for (const { key, max, pair } of keys) {
      const tally = this.#tally(key);
      const countsInFlight = pair || tally.failures.length > 0;
      const used = tally.failures.length + (countsInFlight ? tally.inFlight : 0);
      if (used >= max) {
        const oldest = tally.failures[0] ?? this.#now();
        wait = Math.max(wait, Math.ceil((oldest + this.#window - this.#now()) / 1000), 1);
      }
    }
    if (wait > 0) {
      for (const { key } of keys) this.#tidy(key, this.#tally(key));
      return wait;
    }
    for (const { key } of keys) this.#tally(key).inFlight++;
    return 0;
  }

  /** Number of keys tracked (failures not yet aged out, or attempts in flight). */
  get size(): number {
    return this.#tallies.size;
  }

  /** Ends an attempt started with {@link LoginThrottle.begin}; only `failed` ones count. */
  finish(attempt: LoginAttempt, failed: boolean): void {
    for (const { key } of this.#keys(attempt)) {
      const tally = this.#tally(key);
      tally.inFlight--;
      if (failed) tally.failures.push(this.#now());
      this.#tidy(key, tally);
    }
  }
}

/** Options of a {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Events allowed per key within the window. */
  max: number;
  /** The window, in ms (default 60 s). */
  windowMs?: number;
  /** The clock (tests inject one). */
  now?: () => number;
}

/**
 * At most `max` events per key in any sliding window (new accounts per
 * address, SPEC.md 6.5). Keys whose events aged out are dropped, so made-up
 * keys cannot grow it.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./_accounts.ts";
 * const signups = new RateLimiter({ max: 1 });
 * console.assert(signups.take("10.0.0.1") === 0 && signups.take("10.0.0.1") > 0);
 * ```
 */
export class RateLimiter {
  #events = new Map<string, number[]>();
  #max: number;
  #window: number;
  #now: () => number;
  #sweepAt = SWEEP_AT;

  /** Makes a limiter. */
  constructor(options: RateLimiterOptions) {
    this.#max = options.max;
    this.#window = options.windowMs ?? 60_000;
    this.#now = options.now ?? (() => performance.now());
  }

  #recent(key: string): number[] {
    const times = this.#events.get(key) ?? [];
    const cutoff = this.#now() - this.#window;
    while (times.length && times[0] <= cutoff) times.shift();
    if (times.length === 0) this.#events.delete(key);
    return times;
  }

  /** Records an event for `key` and returns 0, or returns the seconds until one is allowed. */
  take(key: string): number {
    if (this.#events.size >= this.#sweepAt) {
      for (const k of [...this.#events.keys()]) this.#recent(k);
      this.#sweepAt = Math.max(SWEEP_AT, this.#events.size * 2);
    }
    const times = this.#recent(key);
    if (times.length >= this.#max) {
      return Math.max(1, Math.ceil((times[0] + this.#window - this.#now()) / 1000));
    }
    times.push(this.#now());
    this.#events.set(key, times);
    return 0;
  }

  /** Number of keys tracked. */
  get size(): number {
    return this.#events.size;
  }
}
