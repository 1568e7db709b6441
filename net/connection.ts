/**
 * One stream connection with a bounded send queue that never blocks the sender:
 * the piece every server and client writes through.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import { concatBytes } from "./bytes.ts";
import { formatAddr } from "./address.ts";
import type { ReadPolicy } from "./framing.ts";

/**
 * First size of a connection's read buffer; it doubles while reads fill it. Small,
 * because an idle connection holds it for as long as its read is pending.
 */
export const INITIAL_READ_BYTES = 512;

/** Largest write the flush makes at once. */
const WRITE_BATCH_BYTES = 256 * 1024;

/** Default limit of bytes queued for one connection before it is dropped. */
export const DEFAULT_MAX_QUEUE_BYTES = 1024 * 1024;

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  /** Bytes that may wait in the send queue before the peer is dropped (default 1 MiB). */
  maxQueueBytes?: number;
  /** Where queue overflows and write failures are logged. */
  logger?: Logger;
  /** Called after each write that made progress (for backpressure: see {@link Connection.queuedBytes}). */
  onWritten?: (connection: Connection) => void;
  /**
   * How {@link receiveFrames} treats this connection's bad input and time
   * limits; `serveStream` sets its server's policy on every accepted
   * connection. Without one (a dialled connection) a framing error is thrown.
   */
  policy?: ReadPolicy;
}

/** The method the end-of-turn flush calls on each connection that queued bytes. */
const FLUSH = Symbol("flush");

// Connections that queued bytes in this turn. One microtask flushes them all:
// a message fanned out to 50 members costs one task, not 50.
let toFlush: Connection[] = [];
let flushScheduled = false;

function scheduleFlush(connection: Connection): void {
  toFlush.push(connection);
  if (flushScheduled) return;
  flushScheduled = true;
  queueMicrotask(flushAll);
}

// The list being flushed; the two lists take turns, so a turn allocates none.
let flushing: Connection[] = [];

function flushAll(): void {
  flushScheduled = false;
  const connections = toFlush;
  toFlush = flushing;
  flushing = connections;
  try {
    for (const connection of connections) {
      try {
        connection[FLUSH]();
      } catch (error) {
        connection.logger.error("Flush failed: {error}", { error: String(error) });
        connection.close();
      }
    }
  } finally {
    connections.length = 0;
  }
}

// Writes started and reads completed, for the memory reducer's "is the process idle?".
let activity = 0;

/**
 * A count that grows with every write started and every read completed in
 * this process (see {@link noteActivity}). `cli/memory.ts` takes a process
 * whose count stood still as idle.
 */
export function activityCount(): number {
  return activity;
}

/** Counts one completed read (the read path calls it). */
export function noteActivity(): void {
  activity++;
}

/**
 * One accepted or dialled stream connection with a bounded send queue.
 *
 * `send()` never blocks: it appends to the queue, and a flush scheduled for the
 * end of the current turn writes everything queued with as few writes as
 * possible. When more than `maxQueueBytes` are waiting (the peer stopped
 * reading), the connection is closed and further sends are ignored.
 */
export class Connection {
  /** The underlying Deno connection. */
  readonly conn: Deno.Conn;
  /** The peer's address. */
  readonly remoteAddr: Deno.Addr;
  // What waits to be written: one chunk on its own (the common case: no array is made), or
  // an array once there are more. An idle connection holds neither.
  #single: Uint8Array | undefined;
  #queue: Uint8Array[] | undefined;
  #queuedBytes = 0;
  #maxQueueBytes: number;
  #flushing = false;
  #scheduled = false;
  #closed = false;
  #logger: Logger;
  #drainWaiters: (() => void)[] | undefined;
  // The write in flight, and its continuations (made on the first write: an idle connection has none).
  #pending: Uint8Array | undefined;
  #onWrite: ((n: number) => void) | undefined;
  #onWriteError: ((error: unknown) => void) | undefined;
  /**
   * Called after each write that made progress (for backpressure: see
   * {@link Connection.queuedBytes}); may be set after construction.
   */
  onWritten?: (connection: Connection) => void;
  #lastProgress = 0;
  #ending = false;
  /** The read policy (see {@link ConnectionOptions.policy}). */
  readonly policy?: ReadPolicy;
  /**
   * Clock marks kept by the read path and checked by the server's deadline
   * sweep, in `performance.now()` milliseconds: when the first byte of the
   * frame now being received arrived (-1 while no partial frame is held)...
   */
  frameStartedAt = -1;
  /**
   * ...when the server last finished handling a complete message (or the
   * connection opened; Infinity while it is handling one)...
   */
  lastMessageAt: number = performance.now();
  /** ...and the time by which it must register (Infinity once registered, or without a limit). */
  registerBy = Infinity;

  /** Wraps `conn`; TCP connections get `setNoDelay(true)`. */
  constructor(conn: Deno.Conn, options: ConnectionOptions = {}) {
    this.conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.#maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.#logger = options.logger ?? getLogger(["parley", "net"]);
    this.onWritten = options.onWritten;
    this.policy = options.policy;
    if ("setNoDelay" in conn) {
      try {
        (conn as Deno.TcpConn).setNoDelay(true);
      } catch { /* already closed */ }
    }
  }

  /** True once the connection was closed by this side or failed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes queued and not yet written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** The send-queue limit; raising it (to Infinity) leaves overflow decisions to the owner. */
  get maxQueueBytes(): number {
    return this.#maxQueueBytes;
  }
  set maxQueueBytes(bytes: number) {
    this.#maxQueueBytes = bytes;
  }

  /**
   * `performance.now()` of the last write that made progress (0 before the
   * first). A stall detector compares it, and the time it first saw bytes
   * queued, with the clock while {@link Connection.queuedBytes} is above 0.
   */
  get lastProgress(): number {
    return this.#lastProgress;
  }

  /** True once {@link Connection.end} was called (or it is closed): no more input is read. */
  get ending(): boolean {
    return this.#ending || this.#closed;
  }

  /** The logger this connection reports to. */
  get logger(): Logger {
    return this.#logger;
  }

  /**
   * Marks the connection registered (SPEC 6.2): the server's
   * `--register-timeout` no longer applies to it.
   *
   * @example
   * ```ts
   * import { serveStream } from "./serve.ts";
   * import { receiveFrames } from "./framing.ts";
   * import { ImLineDecoder } from "../protocols/im.ts";
   * await using server = serveStream({ port: 0 }, async (connection) => {
   *   for await (const line of receiveFrames(connection, new ImLineDecoder())) {
   *     if (line.startsWith("REGISTER ")) connection.registered();
   *   }
   * }, { registerTimeoutMs: 10_000 });
   * ```
   */
  registered(): void {
    this.registerBy = Infinity;
  }

  /**
   * Queues bytes for the peer. Returns false if the connection is closed or
   * was just dropped for exceeding its queue limit.
   */
  send(bytes: Uint8Array): boolean {
    if (this.#closed) return false;
    this.#queuedBytes += bytes.length;
    if (this.#queuedBytes > this.#maxQueueBytes) {
      this.#logger.warn("Dropping {peer}: send queue exceeded {limit} bytes", {
        peer: formatAddr(this.remoteAddr),
        limit: this.#maxQueueBytes,
      });
      this.close();
      return false;
    }
    if (this.#queue) this.#queue.push(bytes);
    else if (this.#single) {
      this.#queue = [this.#single, bytes];
      this.#single = undefined;
    } else this.#single = bytes;
    if (!this.#flushing && !this.#scheduled) {
      this.#scheduled = true;
      scheduleFlush(this);
    }
    return true;
  }

  /** Starts writing what is queued (the end-of-turn flush calls it). */
  [FLUSH](): void {
    this.#scheduled = false;
    if (this.#flushing) return;
    this.#flushing = true;
    this.#writeNext();
  }

  /**
   * Writes the next batch of the queue: at most ~256 KiB at once, so a long
   * queue is not copied whole and progress shows. A promise continuation per
   * write, and no async frame, keeps a fan-out of one message to many
   * connections cheap (one chunk to each is the common case: no copy at all).
   */
  #writeNext(): void {
    const single = this.#single;
    if (single && !this.#closed) {
      this.#single = undefined;
      return this.#write(single);
    }
    const queue = this.#queue;
    if (!queue || this.#closed) {
      this.#flushing = false;
      this.#queue = this.#single = undefined;
      this.#wakeDrainWaiters();
      return;
    }
    let count = 0;
    let size = 0;
    while (count < queue.length && (count === 0 || size < WRITE_BATCH_BYTES)) {
      size += queue[count++].length;
    }
    let data: Uint8Array;
    if (count === queue.length) {
      data = count === 1 ? queue[0] : concatBytes(queue);
      this.#queue = undefined;
    } else {
      data = concatBytes(queue.slice(0, count));
      this.#queue = queue.slice(count);
    }
    this.#write(data);
  }

  #write(data: Uint8Array): void {
    this.#pending = data;
    let written: Promise<number>;
    try {
      written = this.conn.write(data);
    } catch (error) {
      return this.#writeFailed(error); // a stream that throws instead of rejecting
    }
    activity++;
    written.then(
      this.#onWrite ??= (n) => this.#written(n),
      this.#onWriteError ??= (error) => this.#writeFailed(error),
    );
  }

  #written(n: number): void {
    const data = this.#pending!;
    this.#pending = undefined;
    if (this.#closed) return this.#writeNext();
    this.#queuedBytes -= n;
    this.#lastProgress = performance.now();
    try {
      this.onWritten?.(this);
    } catch (error) {
      this.#logger.error("onWritten failed: {error}", { error: String(error) });
    }
    if (this.#closed) return this.#writeNext(); // onWritten may close it
    if (n < data.length) return this.#write(data.subarray(n));
    this.#writeNext();
  }

  #writeFailed(error: unknown): void {
    this.#pending = undefined;
    if (!this.#closed) {
      this.#logger.debug("Write to {peer} failed: {error}", {
        peer: formatAddr(this.remoteAddr),
        error: String(error),
      });
      this.close();
    }
    this.#writeNext();
  }

  /** Resolves once everything queued so far is written (or the connection closed). */
  drain(): Promise<void> {
    if (this.#closed || (!this.#single && !this.#queue && !this.#flushing && !this.#scheduled)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.#drainWaiters ??= []).push(resolve));
  }

  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = undefined;
    if (waiters) { for (const wake of waiters) wake(); }
  }

  /** Writes what is queued (waiting at most `timeoutMs`), then closes. */
  async end(timeoutMs = 1000): Promise<void> {
    if (this.#closed) return;
    this.#ending = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.drain(),
      new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
    this.close();
  }

  /** Closes the connection now; queued bytes are discarded. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = this.#single = undefined;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.#wakeDrainWaiters();
  }
}
