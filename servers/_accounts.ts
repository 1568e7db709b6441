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

/** Hashes computed at once; more wait their turn (each costs 128 * N * r bytes of memory). */
const MAX_PARALLEL_HASHES = 4;
let running = 0;
const waiting: (() => void)[] = [];

async function scryptAsync(password: string, salt: Uint8Array, cost: number): Promise<Uint8Array> {
  while (running >= MAX_PARALLEL_HASHES) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await scryptOnce(password, salt, cost);
  } finally {
    running--;
    waiting.shift()?.();
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
  return `scrypt$${cost}$${b64(salt)}$${b64(await scryptAsync(password, salt, cost))}`;
}

/** Checks a password against a stored hash in constant time. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, cost, salt, hash] = stored.split("$");
  if (scheme !== "scrypt" || !salt || !hash) return false;
  const expected = unb64(hash);
  const actual = await scryptAsync(password, unb64(salt), Number(cost));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** The account table in a SQLite file (or `:memory:`). */
export class AccountStore {
  #db: DatabaseSync;
  #cost: number;
  /** A hash to verify against when the name is unknown, so timing does not reveal it. */
  #decoy?: Promise<string>;

  /** Opens (creating if needed) the database at `path`. */
  constructor(path: string, cost = DEFAULT_HASH_COST) {
    this.#db = new DatabaseSync(path);
    this.#cost = cost;
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
  async add(name: string, password: string): Promise<boolean> {
    const hash = await hashPassword(password, this.#cost);
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
   * Checks a login. With `signup` open, an unknown name is created with this
   * password. Unknown names still cost one hash, so both paths take as long.
   */
  async login(name: string, password: string, signup: boolean): Promise<boolean> {
    const stored = this.hashOf(name);
    if (stored !== undefined) return await verifyPassword(password, stored);
    if (signup) return await this.add(name, password) || await this.login(name, password, false);
    this.#decoy ??= hashPassword(crypto.randomUUID(), this.#cost);
    await verifyPassword(password, await this.#decoy);
    return false;
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }
}

/** Options of a {@link LoginThrottle}. */
export interface LoginThrottleOptions {
  /** Failures (per name, and per address) before further attempts are refused. */
  maxFailures?: number;
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

/**
 * Counts failed logins per key (`name:<user>`, `addr:<ip>`). Once a key reaches
 * the limit within the window, attempts are refused until its oldest failure
 * ages out. Successes are never counted, so a busy but honest client is never
 * refused.
 *
 * Attempts in progress count too, so parallel guesses cannot start more hash
 * computations than the limit allows: for a name always, and for an address
 * once it has failed at least once (an address with no failures, such as a
 * gateway logging many users in at once, is never held back).
 */
export class LoginThrottle {
  #tallies = new Map<string, Tally>();
  #sweepAt = SWEEP_AT;
  #max: number;
  #window: number;
  #now: () => number;

  /** Makes a throttle. */
  constructor(options: LoginThrottleOptions = {}) {
    this.#max = options.maxFailures ?? 5;
    this.#window = options.windowMs ?? 60_000;
    this.#now = options.now ?? (() => performance.now());
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
   * Starts an attempt for these keys. Returns the seconds to wait if refused,
   * or 0 if the attempt may go ahead (then call {@link LoginThrottle.finish}).
   */
  begin(keys: readonly string[]): number {
    if (this.#tallies.size >= this.#sweepAt) this.#sweep();
    let wait = 0;
    for (const key of keys) {
      const tally = this.#tally(key);
      const countsInFlight = key.startsWith("name:") || tally.failures.length > 0;
      const used = tally.failures.length + (countsInFlight ? tally.inFlight : 0);
      if (used >= this.#max) {
        const oldest = tally.failures[0] ?? this.#now();
        wait = Math.max(wait, Math.ceil((oldest + this.#window - this.#now()) / 1000), 1);
      }
    }
    if (wait > 0) {
      for (const key of keys) this.#tidy(key, this.#tally(key));
      return wait;
    }
    for (const key of keys) this.#tally(key).inFlight++;
    return 0;
  }

  /** Number of names and addresses tracked (failures not yet aged out, or attempts in flight). */
  get size(): number {
    return this.#tallies.size;
  }

  /** Ends an attempt started with {@link LoginThrottle.begin}. */
  finish(keys: readonly string[], success: boolean): void {
    for (const key of keys) {
      const tally = this.#tally(key);
      tally.inFlight--;
      if (!success) tally.failures.push(this.#now());
      this.#tidy(key, tally);
    }
  }
}
