/**
 * The one read path: {@link receiveFrames} joins a {@link FrameDecoder} to a
 * {@link Connection} (as nats.js joins its parser to its transport), and holds
 * the graded bad-input policy of SPEC.md's conventions and the time limits of
 * SPEC 6.2 in one place that each server configures through its
 * {@link ReadPolicy}:
 *
 * - a framing error (`FrameError`, `FrameTooLargeError`: message boundaries
 *   cannot be found, or a frame is over its limit) gets the protocol's own
 *   reply from {@link ReadPolicy.onFrameError}, then the connection is ended;
 * - a well-framed message with bad content is the server's business: its loop
 *   replies and keeps reading;
 * - a frame must be complete within {@link ReadPolicy.frameTimeoutMs} of its
 *   first byte (slowloris), a connection must register within
 *   {@link ReadPolicy.registerTimeoutMs}, and the idle timer is reset by
 *   complete messages only, never by single bytes (it counts from the moment
 *   the server finished handling them, so slow work of its own is not idling).
 *
 * The time limits cost no timer per connection or per message: the read path
 * writes three numbers on the connection, and one {@link DeadlineSweep} per
 * server (started by `serveStream`) checks every connection a few times per
 * shortest limit.
 *
 * @module
 */

import type { FrameDecoder } from "../protocols/frames.ts";
import { type FrameError, type FrameTooLargeError, isFrameError } from "../protocols/errors.ts";
import { formatAddr } from "./address.ts";
import { type Connection, INITIAL_READ_BYTES, noteActivity } from "./connection.ts";

/** Default `--frame-timeout`: a frame must be complete 10 s after its first byte. */
export const DEFAULT_FRAME_TIMEOUT_MS = 10_000;

/** Default `--register-timeout`: a connection must register within 10 s. */
export const DEFAULT_REGISTER_TIMEOUT_MS = 10_000;

/** Largest read buffer of one connection (it starts at 512 bytes and doubles while reads fill it). */
export const MAX_READ_BYTES = 64 * 1024;

/** The errors a decoder throws on input whose frames cannot be found. */
export type FramingError = FrameError | FrameTooLargeError;

/**
 * What a server decides about bad input and time (SPEC conventions, 6.2).
 * Every hook returns the protocol's reply as bytes, or undefined where the
 * protocol has none; the connection is ended (what is queued is still sent)
 * after the reply.
 */
export interface ReadPolicy {
  /**
   * The reply to a framing error (then the connection is ended). Also the
   * place to count or log protocol errors. Without it nothing is sent.
   */
  onFrameError?: (error: FramingError, connection: Connection) => Uint8Array | undefined;
  /**
   * A frame must be complete this many ms after its first byte, or the
   * connection is closed (default {@link DEFAULT_FRAME_TIMEOUT_MS}; 0 turns it off).
   */
  frameTimeoutMs?: number;
  /**
   * A connection that has not called {@link Connection.registered} this many
   * ms after it was accepted is ended with {@link ReadPolicy.onRegisterTimeout}'s
   * reply. Default 0: the protocol has no registration step.
   */
  registerTimeoutMs?: number;
  /** The reply to a connection that did not register in time. */
  onRegisterTimeout?: (connection: Connection) => Uint8Array | undefined;
  /**
   * A connection that sent no complete message for this many ms is ended with
   * {@link ReadPolicy.onIdle}'s reply. Default 0: no idle limit.
   */
  idleTimeoutMs?: number;
  /** The reply to an idle connection. */
  onIdle?: (connection: Connection) => Uint8Array | undefined;
}

/**
 * Reads `connection` through `decoder` and yields every complete frame, in
 * order, until the peer closes, a read fails (reset), or this side closes or
 * ends the connection (then no further frame is yielded). The one read path
 * of every Parley server and client.
 *
 * A framing error, and a partial frame left when the peer closes, go to the
 * connection's {@link ReadPolicy}: its `onFrameError` reply is sent, the
 * connection is ended and the iteration finishes normally. A connection
 * without a policy (one the caller dialled) throws the error instead, so a
 * client can report the protocol error. Errors that are not framing errors
 * always propagate. (Frames a decoder completed in the same read before the
 * broken one are lost with the connection: a decoder throws, it returns nothing.)
 *
 * To stop reading, `break` (or `return`) out of the loop; `serveStream` ends
 * the connection, flushing what was queued, once the handler returns. The
 * read buffer starts at 512 bytes and doubles while reads fill it (up to
 * {@link MAX_READ_BYTES}), so idle connections hold little memory. A decoder
 * that reports {@link FrameDecoder.buffered} gets an exact frame timer; one
 * that does not is timed from the first read that completed no frame.
 *
 * @example A server loop: a framing error gets the protocol's reply, then the end
 * ```ts
 * import { serveStream } from "./serve.ts";
 * import { receiveFrames } from "./framing.ts";
 * import { encodeIm, ImLineDecoder } from "../protocols/im.ts";
 *
 * await using server = serveStream({ port: 0 }, async (connection) => {
 *   for await (const line of receiveFrames(connection, new ImLineDecoder())) {
 *     if (line === "QUIT") break; // serveStream ends the connection
 *     connection.send(new TextEncoder().encode(`${line}\n`)); // content errors: reply, stay
 *   }
 * }, {
 *   onFrameError: (error) => encodeIm({ command: "ERROR", text: error.message }),
 *   frameTimeoutMs: 10_000,
 * });
 * ```
 *
 * @example A client: a dialled connection has no policy, so a framing error is thrown
 * ```ts
 * import { Connection } from "./connection.ts";
 * import { receiveFrames } from "./framing.ts";
 * import { serveStream } from "./serve.ts";
 * import { ChannelDecoder } from "../protocols/channel.ts";
 *
 * await using server = serveStream({ port: 0 }, (connection) => {
 *   connection.send(new Uint8Array(250)); // one frame and a half
 * });
 * const conn = await Deno.connect({ port: (server.addr as Deno.NetAddr).port });
 * const frames: string[] = [];
 * let failure: unknown;
 * try {
 *   for await (const text of receiveFrames(new Connection(conn), new ChannelDecoder())) {
 *     frames.push(text);
 *   }
 * } catch (error) {
 *   failure = error; // FrameError: the stream ended inside a frame
 * }
 * conn.close();
 * console.assert(frames.length === 1 && failure instanceof SyntaxError);
 * ```
 */
export async function* receiveFrames<T>(
  connection: Connection,
  decoder: FrameDecoder<T>,
): AsyncGenerator<T, void, undefined> {
  const reader = new FrameReader(connection, decoder);
  for (let frames; (frames = await reader.next());) {
    for (const frame of frames) {
      if (connection.ending) return;
      yield frame;
    }
  }
}

/**
 * {@link receiveFrames}, one read at a time: yields the frames each read
 * completed, as one array (never empty), with the same policy and time
 * limits. A server that handles a whole batch before it awaits anything lets
 * every send queue flush once per batch instead of once per frame (the CRC
 * node routes this way). The caller checks {@link Connection.ending} between
 * frames if it may close the connection while handling a batch.
 */
export async function* receiveFrameBatches<T>(
  connection: Connection,
  decoder: FrameDecoder<T>,
): AsyncGenerator<T[], void, undefined> {
  const reader = new FrameReader(connection, decoder);
  for (let frames; (frames = await reader.next());) yield frames;
}

/**
 * The one read loop under {@link receiveFrames} and {@link receiveFrameBatches},
 * and the way to read without a generator, for the server loops that hold the
 * most connections (the channel server): {@link FrameReader.next} resolves
 * with the frames the next read(s) completed, under the connection's
 * {@link ReadPolicy} and time limits, or with undefined at the end. It is a
 * promise chained on the pending read, not a suspended generator, so an idle
 * connection costs less (`bash bench/idle_memory.sh`). The caller
 * handles a batch, checking {@link Connection.ending} between frames, and then
 * asks for the next; the idle clock stops from the moment a batch is handed
 * out until the next call.
 *
 * @example
 * ```ts
 * import { serveStream } from "./serve.ts";
 * import { FrameReader } from "./framing.ts";
 * import { ImLineDecoder } from "../protocols/im.ts";
 * await using server = serveStream({ port: 0 }, async (connection) => {
 *   const reader = new FrameReader(connection, new ImLineDecoder());
 *   for (let lines; (lines = await reader.next());) {
 *     for (const line of lines) {
 *       if (connection.ending) return;
 *       connection.send(new TextEncoder().encode(`${line}\n`));
 *     }
 *   }
 * });
 * ```
 */
export class FrameReader<T> {
  #connection: Connection;
  #decoder: FrameDecoder<T>;
  #buffer: Uint8Array = new Uint8Array(INITIAL_READ_BYTES);
  #handedOut = false;
  #onRead: ((n: number | null) => Promise<T[] | undefined> | T[] | undefined) | undefined;

  /** Reads `connection` through `decoder`. */
  constructor(connection: Connection, decoder: FrameDecoder<T>) {
    this.#connection = connection;
    this.#decoder = decoder;
  }

  /** The frames of the next read that completes any (never empty), or undefined at the end. */
  next(): Promise<T[] | undefined> {
    const connection = this.#connection;
    if (this.#handedOut) {
      this.#handedOut = false;
      connection.lastMessageAt = performance.now();
    }
    if (connection.ending) return Promise.resolve(undefined);
    // One continuation per reader, made once: a read costs no closures.
    return connection.conn.read(this.#buffer).then(
      this.#onRead ??= (n) => this.#read(n),
      readFailed,
    );
  }

  #read(n: number | null): Promise<T[] | undefined> | T[] | undefined {
    noteActivity();
    const connection = this.#connection;
    if (connection.ending) return undefined;
    if (n === null) return inputEnded(connection, this.#decoder).then(() => undefined);
    const buffer = this.#buffer;
    let frames: T[];
    try {
      frames = this.#decoder.decode(buffer.subarray(0, n));
    } catch (error) {
      return framingFailed(connection, error).then(() => undefined);
    }
    markProgress(connection, frames.length, this.#decoder.buffered);
    if (n === buffer.length && buffer.length < MAX_READ_BYTES) {
      this.#buffer = new Uint8Array(buffer.length * 2);
    }
    if (frames.length === 0) return this.next();
    // While the server handles them (a password hash, say) the peer is not idling.
    connection.lastMessageAt = Infinity;
    this.#handedOut = true;
    return frames;
  }
}

/** A read failed: reset by the peer, or closed by this side while it was pending. */
function readFailed(): undefined {
  return undefined;
}

/** The peer closed its side: a partial frame left is a framing error. */
async function inputEnded<T>(connection: Connection, decoder: FrameDecoder<T>): Promise<void> {
  if (connection.ending) return;
  try {
    decoder.end();
  } catch (error) {
    return await framingFailed(connection, error);
  }
}

/** Updates the clock marks the deadline sweep reads; no timer is touched. */
function markProgress(connection: Connection, frames: number, buffered: number | undefined): void {
  const now = performance.now();
  if (frames > 0) connection.lastMessageAt = now;
  if (buffered === undefined) {
    // The decoder does not say: a read that completes nothing starts (or continues) a frame.
    if (frames > 0) connection.frameStartedAt = -1;
    else if (connection.frameStartedAt < 0) connection.frameStartedAt = now;
  } else if (buffered === 0) {
    connection.frameStartedAt = -1;
  } else if (frames > 0 || connection.frameStartedAt < 0) {
    connection.frameStartedAt = now; // the partial frame began in this read
  }
}

async function framingFailed(connection: Connection, error: unknown): Promise<void> {
  if (!isFrameError(error)) throw error;
  const policy = connection.policy;
  if (!policy) throw error;
  connection.logger.info("Framing error from {peer}, closing: {error}", {
    peer: formatAddr(connection.remoteAddr),
    error: error.message,
  });
  const reply = policy.onFrameError?.(error, connection);
  if (reply) connection.send(reply);
  await connection.end();
}

/**
 * One timer for all of a server's connections: every tick it checks each
 * connection's clock marks against the {@link ReadPolicy} time limits. The
 * tick is a tenth of the shortest limit (at least 10 ms, at most 1 s), so a
 * limit fires at most 10% late; the timer runs only while connections are
 * watched. `serveStream` owns one; servers never need to touch it.
 *
 * @example
 * ```ts
 * import { DeadlineSweep } from "./framing.ts";
 * import type { Connection } from "./connection.ts";
 * const watched = new Set<Connection>();
 * const sweep = new DeadlineSweep(watched, { frameTimeoutMs: 1000 });
 * sweep.check(); // called when a connection is added; starts the timer if needed
 * sweep.stop();
 * ```
 */
export class DeadlineSweep {
  #connections: ReadonlySet<Connection>;
  #policy: ReadPolicy;
  #frameMs: number;
  #registerMs: number;
  #idleMs: number;
  #tickMs: number;
  #timer?: ReturnType<typeof setInterval>;

  /** Watches `connections` (a live set the owner adds to and deletes from). */
  constructor(connections: ReadonlySet<Connection>, policy: ReadPolicy) {
    this.#connections = connections;
    this.#policy = policy;
    this.#frameMs = policy.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS;
    this.#registerMs = policy.registerTimeoutMs ?? 0;
    this.#idleMs = policy.idleTimeoutMs ?? 0;
    const limits = [this.#frameMs, this.#registerMs, this.#idleMs].filter((ms) => ms > 0);
    this.#tickMs = limits.length === 0
      ? 0
      : Math.min(1000, Math.max(10, Math.floor(Math.min(...limits) / 10)));
  }

  /** Stamps a new connection's register deadline and makes sure the timer runs. */
  admit(connection: Connection): void {
    if (this.#registerMs > 0) connection.registerBy = performance.now() + this.#registerMs;
    this.check();
  }

  /** Starts the timer when connections are watched, stops it when none are. */
  check(): void {
    if (this.#tickMs === 0) return;
    if (this.#connections.size === 0) return this.stop();
    this.#timer ??= setInterval(() => this.sweep(), this.#tickMs);
  }

  /** Checks every connection now (the timer calls it; tests may too). */
  sweep(now = performance.now()): void {
    if (this.#connections.size === 0) return this.stop();
    for (const connection of this.#connections) {
      if (connection.ending) continue;
      if (
        this.#frameMs > 0 && connection.frameStartedAt >= 0 &&
        now - connection.frameStartedAt >= this.#frameMs
      ) {
        connection.logger.info("Closing {peer}: a frame took longer than {ms} ms", {
          peer: formatAddr(connection.remoteAddr),
          ms: this.#frameMs,
        });
        connection.close();
      } else if (connection.registerBy <= now) {
        connection.logger.info("Closing {peer}: not registered within {ms} ms", {
          peer: formatAddr(connection.remoteAddr),
          ms: this.#registerMs,
        });
        this.#end(connection, this.#policy.onRegisterTimeout);
      } else if (this.#idleMs > 0 && now - connection.lastMessageAt >= this.#idleMs) {
        connection.logger.info("Closing {peer}: idle for {ms} ms", {
          peer: formatAddr(connection.remoteAddr),
          ms: this.#idleMs,
        });
        this.#end(connection, this.#policy.onIdle);
      }
    }
  }

  #end(connection: Connection, reply?: (connection: Connection) => Uint8Array | undefined): void {
    try {
      const bytes = reply?.(connection);
      if (bytes) connection.send(bytes);
    } catch (error) {
      connection.logger.error("Timeout reply failed: {error}", { error: String(error) });
    }
    void connection.end();
  }

  /** Stops the timer (it starts again on the next {@link DeadlineSweep.check}). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
