/**
 * The networking layer every Parley server uses, written once: the accept
 * loop, the per-connection send queue, idle and connect timeouts, the server
 * object shape, and signal handling for entry points.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";

/** First size of a connection's read buffer; it grows while reads fill it. */
export const INITIAL_READ_BYTES = 1024;

/** Default limit of bytes queued for one connection before it is dropped. */
export const DEFAULT_MAX_QUEUE_BYTES = 1024 * 1024;

/** What every running Parley server looks like (the shape of `Deno.serve`). */
export interface Server {
  /** The address the server listens on (with the real port when 0 was asked). */
  readonly addr: Deno.Addr;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /** Stops accepting, says goodbye where the protocol can, closes every connection. */
  shutdown(): Promise<void>;
  /** Same as {@link Server.shutdown}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Options of a {@link Connection}. */
export interface ConnectionOptions {
  /** Bytes that may wait in the send queue before the peer is dropped (default 1 MiB). */
  maxQueueBytes?: number;
  /** Where queue overflows and write failures are logged. */
  logger?: Logger;
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
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #maxQueueBytes: number;
  #flushing = false;
  #scheduled = false;
  #closed = false;
  #logger: Logger;
  #drainWaiters: (() => void)[] = [];

  /** Wraps `conn`; TCP connections get `setNoDelay(true)`. */
  constructor(conn: Deno.Conn, options: ConnectionOptions = {}) {
    this.conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.#maxQueueBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.#logger = options.logger ?? getLogger(["parley", "net"]);
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
    this.#queue.push(bytes);
    if (!this.#flushing && !this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.#flush());
    }
    return true;
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const chunks = this.#queue;
        this.#queue = [];
        const data = chunks.length === 1 ? chunks[0] : concatBytes(chunks);
        await writeAll(this.conn, data);
        this.#queuedBytes -= data.length;
      }
    } catch (error) {
      if (!this.#closed) {
        this.#logger.debug("Write to {peer} failed: {error}", {
          peer: formatAddr(this.remoteAddr),
          error: String(error),
        });
        this.close();
      }
    } finally {
      this.#flushing = false;
      if (this.#queue.length === 0 || this.#closed) {
        for (const wake of this.#drainWaiters.splice(0)) wake();
      }
    }
  }

  /** Resolves once everything queued so far is written (or the connection closed). */
  drain(): Promise<void> {
    if (this.#closed || (this.#queue.length === 0 && !this.#flushing && !this.#scheduled)) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** Writes what is queued (waiting at most `timeoutMs`), then closes. */
  async end(timeoutMs = 1000): Promise<void> {
    if (this.#closed) return;
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
    this.#queue = [];
    try {
      this.conn.close();
    } catch { /* already closed */ }
    for (const wake of this.#drainWaiters.splice(0)) wake();
  }

  /**
   * Reads chunks until the peer closes or this side closes; read errors end the stream.
   *
   * The read buffer starts small and doubles whenever a read fills it (up to
   * `maxBufferSize`), so thousands of idle connections hold little memory while
   * a busy one reads in large gulps. A yielded chunk is only valid until the
   * next one is requested.
   */
  async *chunks(maxBufferSize = 64 * 1024): AsyncGenerator<Uint8Array> {
    let buffer = new Uint8Array(Math.min(INITIAL_READ_BYTES, maxBufferSize));
    while (!this.#closed) {
      let n: number | null;
      try {
        n = await this.conn.read(buffer);
      } catch {
        return;
      }
      if (n === null) return;
      yield buffer.subarray(0, n);
      if (n === buffer.length && buffer.length < maxBufferSize) {
        buffer = new Uint8Array(Math.min(buffer.length * 2, maxBufferSize));
      }
    }
  }
}

/**
 * Writes all of `bytes` (a write may take only part). For clients and tools
 * that write in turn; servers use {@link Connection.send}.
 *
 * @example
 * ```ts
 * import { writeAll } from "./_net.ts";
 * const sink = { write: (p: Uint8Array) => Promise.resolve(Math.min(p.length, 3)) };
 * await writeAll(sink, new Uint8Array(10));
 * ```
 */
export async function writeAll(
  writer: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await writer.write(bytes.subarray(offset));
}

/** Writes all of `bytes` to a synchronous writer (stdout, a log file). */
export function writeAllSync(
  writer: { writeSync(p: Uint8Array): number },
  bytes: Uint8Array,
): void {
  for (let offset = 0; offset < bytes.length;) offset += writer.writeSync(bytes.subarray(offset));
}

/**
 * True for the errors that mean "the connection is gone": reset by the peer,
 * closed by this side while a read was pending, or broken framing at the end.
 * A client's reader treats them as the end of the session.
 *
 * @example
 * ```ts
 * import { isConnectionGone } from "./_net.ts";
 * console.assert(isConnectionGone(new Deno.errors.ConnectionReset("x")) && !isConnectionGone(new TypeError("x")));
 * ```
 */
export function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BrokenPipe ||
    error instanceof SyntaxError;
}

/** Concatenates byte arrays into one. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Formats an address for logs and replies: `host:port` or a socket path. */
export function formatAddr(addr: Deno.Addr): string {
  if ("path" in addr) return addr.path || "unix";
  if (!("hostname" in addr)) return addr.transport;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** Where a stream server listens. */
export type ListenSpec =
  | { transport?: "tcp"; hostname?: string; port?: number }
  | { transport: "unix"; path: string };

/** Options of {@link serveStream}. */
export interface ServeStreamOptions extends ConnectionOptions {
  /** Called for each connection once shutdown begins, before it is closed (a goodbye frame). */
  farewell?: (connection: Connection) => void;
  /** Called once after the listener and every connection are closed. */
  onClosed?: () => void;
}

/**
 * Listens on TCP or a Unix socket and runs `handler` for every connection.
 *
 * Each connection's task is isolated: an error thrown by the handler is logged
 * and closes that connection only. The connection is closed when the handler
 * returns. A connection accepted during shutdown is closed at once.
 *
 * @example
 * ```ts
 * import { serveStream } from "./_net.ts";
 * await using server = serveStream({ port: 0 }, async (connection) => {
 *   for await (const chunk of connection.chunks()) connection.send(chunk.slice());
 * });
 * console.assert(server.addr.transport === "tcp");
 * ```
 */
export function serveStream(
  listen: ListenSpec,
  handler: (connection: Connection) => Promise<void> | void,
  options: ServeStreamOptions = {},
): Server {
  const logger = options.logger ?? getLogger(["parley", "net"]);
  const listener: Deno.Listener = listen.transport === "unix"
    ? Deno.listen({ transport: "unix", path: listen.path })
    : Deno.listen({ hostname: listen.hostname ?? "127.0.0.1", port: listen.port ?? 0 });
  const live = new Set<Connection>();
  const tasks = new Set<Promise<void>>();
  let stopping = false;
  const finished = Promise.withResolvers<void>();

  const run = async (connection: Connection) => {
    try {
      await handler(connection);
    } catch (error) {
      logger.error("Connection {peer} failed: {error}", {
        peer: formatAddr(connection.remoteAddr),
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      });
    } finally {
      connection.close();
      live.delete(connection);
    }
  };

  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping) return;
        // Transient accept failures (too many open files, a reset before accept) must not stop the server.
        logger.warn("Accept failed: {error}", { error: String(error) });
        if (error instanceof Deno.errors.BadResource) return;
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      if (stopping) {
        conn.close();
        continue;
      }
      const connection = new Connection(conn, options);
      live.add(connection);
      const task = run(connection);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = () => {
    shutdownPromise ??= (async () => {
      stopping = true;
      try {
        listener.close();
      } catch { /* closed */ }
      await acceptLoop;
      await Promise.all([...live].map(async (connection) => {
        try {
          options.farewell?.(connection);
        } catch { /* best effort */ }
        await connection.end(500);
      }));
      await Promise.all([...tasks]);
      options.onClosed?.();
      finished.resolve();
    })();
    return shutdownPromise;
  };

  return {
    addr: listener.addr,
    finished: finished.promise,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

/**
 * Calls `onIdle` when `reset()` has not been called for `ms` milliseconds.
 * The timer is cleared by `clear()`; a timeout of 0 or less disables it.
 */
export class IdleTimer {
  #ms: number;
  #onIdle: () => void;
  #timer?: ReturnType<typeof setTimeout>;
  #last = 0;

  /** Starts the timer. */
  constructor(ms: number, onIdle: () => void) {
    this.#ms = ms;
    this.#onIdle = onIdle;
    this.reset();
  }

  /** Notes activity: the idle period starts again. */
  reset(): void {
    if (this.#ms <= 0) return;
    this.#last = performance.now();
    if (this.#timer === undefined) this.#arm(this.#ms);
  }

  // One timer per connection, re-armed only when it fires early: resetting costs no timer op.
  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      const idle = performance.now() - this.#last;
      if (idle >= this.#ms - 1) {
        this.#timer = undefined;
        this.#onIdle();
      } else {
        this.#arm(this.#ms - idle);
      }
    }, ms);
  }

  /** Stops the timer for good. */
  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#ms = 0;
  }
}

/**
 * Opens a TCP connection, failing with `Deno.errors.TimedOut` after `timeoutMs`.
 * The connection gets `setNoDelay(true)`.
 *
 * @example
 * ```ts
 * import { connectWithTimeout } from "./_net.ts";
 * const result = await connectWithTimeout("127.0.0.1", 1, 200).catch((e) => e);
 * console.assert(result instanceof Error);
 * ```
 */
export async function connectWithTimeout(
  hostname: string,
  port: number,
  timeoutMs: number,
): Promise<Deno.TcpConn> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const conn = await Deno.connect({ hostname, port, signal });
    conn.setNoDelay(true);
    return conn;
  } catch (error) {
    if (signal.aborted) {
      throw new Deno.errors.TimedOut(
        `Connecting to ${hostname}:${port} timed out after ${timeoutMs} ms`,
      );
    }
    throw error;
  }
}

/** What {@link exitOnSignal} returns: add the servers to stop as they start. */
export interface SignalStop {
  /** Shuts this server down too when a signal arrives. */
  add(server: Server): void;
}

/**
 * For entry points: on SIGINT or SIGTERM, shut the registered servers down
 * and exit 0. Call it before starting anything, so a signal that arrives
 * while a server starts is still a clean exit.
 */
export function exitOnSignal(servers: Server[] = [], logger?: Logger): SignalStop {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let stopping = false;
  const handler = async () => {
    if (stopping) return;
    stopping = true;
    logger?.info("Shutting down");
    const timer = setTimeout(() => Deno.exit(0), 3000);
    await Promise.allSettled(servers.map((s) => s.shutdown()));
    clearTimeout(timer);
    Deno.exit(0);
  };
  for (const s of signals) Deno.addSignalListener(s, handler);
  return { add: (server) => void servers.push(server) };
}
