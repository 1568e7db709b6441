/**
 * The accept loop and the server object every Parley server returns (the shape
 * of `Deno.serve`), with the limits of SPEC 6.1 (accept errors, connections
 * per address and in all) and the deadline sweep of SPEC 6.2.
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import { Connection, type ConnectionOptions } from "./connection.ts";
import { CidrSet, formatAddr, peerKey } from "./address.ts";
import { DeadlineSweep, type ReadPolicy } from "./framing.ts";
import { listenError, listenTcp, type TcpListenSpec, type UnixListener } from "./listen.ts";
import { formatHostPort } from "./address.ts";

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

/** A PEM certificate chain and its private key (`--tls-cert FILE`, `--tls-key FILE`). */
export interface TlsCertificate {
  /** The certificate chain, PEM. */
  cert: string;
  /** The private key, PEM. */
  key: string;
}

/**
 * Where a stream server listens: a TCP address (opened here; with `tls`,
 * every connection speaks TLS only), or a Unix socket listener opened
 * beforehand with `listenUnix()` (which needs an `await` to check for a live
 * server at the path).
 */
export type ListenSpec = (TcpListenSpec & { tls?: TlsCertificate }) | UnixListener;

/** The TLS certificate or key was refused when the listener opened (not PEM, or not a pair). */
export class TlsSetupError extends Error {
  /** Makes the error; the message names what was wrong. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsSetupError";
  }
}

/** Time a TLS client has to finish its handshake, ms (as `--frame-timeout`'s default). */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * Completes the TLS handshake of an accepted connection within `timeoutMs`
 * (plain connections pass at once). A failure (a plain-TCP client, a client
 * that rejects the certificate, a stranger that never finishes) is one debug
 * line; the connection is closed and false returned.
 */
async function completeHandshake(
  connection: Connection,
  timeoutMs: number,
  logger: Logger,
): Promise<boolean> {
  const conn = connection.conn;
  if (!("handshake" in conn)) return true;
  const timer = setTimeout(() => connection.close(), timeoutMs);
  try {
    await (conn as Deno.TlsConn).handshake();
    return !connection.closed;
  } catch (error) {
    logger.debug("TLS handshake with {peer} failed: {error}", {
      peer: formatAddr(connection.remoteAddr),
      error: connection.closed ? `not done within ${timeoutMs} ms` : String(error),
    });
    connection.close();
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Listens on TCP with TLS (`Deno.listenTls`; the handshake happens later, in
 * each connection's own task). A certificate or key that Deno refuses throws
 * {@link TlsSetupError}; an address problem a `ListenError`.
 */
function listenTls(hostname: string, port: number, tls: TlsCertificate): Deno.Listener {
  try {
    return Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key });
  } catch (error) {
    const isDenoError = Object.values(Deno.errors).some((kind) => error instanceof kind);
    const isAddressProblem = isDenoError
      ? !(error instanceof Deno.errors.InvalidData)
      // A name that does not resolve is a plain Error too; a refused certificate is the rest.
      : error instanceof Error && /lookup address|not known/i.test(error.message);
    if (isAddressProblem) throw listenError(error, formatHostPort(hostname, port));
    throw new TlsSetupError(
      `the TLS certificate or key was refused: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}

/** Default `--max-per-ip`: simultaneous connections from one address (as ergo). */
export const DEFAULT_MAX_PER_IP = 16;

/** Default `--max-connections`: simultaneous connections to one server. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

/** Default `--exempt`: addresses not counted by `--max-per-ip`. */
export const DEFAULT_EXEMPT = "127.0.0.0/8,::1";

/** The text a connection over `--max-per-ip` is refused with (SPEC 6.1). */
export const TOO_MANY_FROM_ADDRESS = "too many connections from your address";

/** The text a connection over `--max-connections` is refused with. */
export const SERVER_FULL = "server full, too many connections";

/**
 * The numbers every stream server takes from its flags (SPEC conventions, 6.1,
 * 6.2). A server's options interface extends this and passes it on to
 * {@link serveStream}.
 */
export interface ServerLimits {
  /** Bytes queued for one peer before it is dropped (`--max-queue`, 1 MiB). */
  maxQueueBytes?: number;
  /** `--frame-timeout` in ms (10 000; 0 turns it off). */
  frameTimeoutMs?: number;
  /** `--register-timeout` in ms (servers with a registration step set it; 0 is off). */
  registerTimeoutMs?: number;
  /** `--max-per-ip` (16). */
  maxPerIp?: number;
  /** `--exempt`: CIDR blocks not counted per address (`127.0.0.0/8,::1`; empty: none). */
  exempt?: string | readonly string[];
  /** `--max-connections` (10 000). */
  maxConnections?: number;
}

/** Options of {@link serveStream}. */
export interface ServeStreamOptions extends ConnectionOptions, ReadPolicy, ServerLimits {
  /**
   * The protocol's error reply carrying `text` for a refused connection
   * ({@link TOO_MANY_FROM_ADDRESS}, {@link SERVER_FULL}), or undefined where
   * it has none. The connection is closed after it.
   */
  refuse?: (text: string) => Uint8Array | undefined;
  /** Called for each connection once shutdown begins, before it is closed (a goodbye frame). */
  farewell?: (connection: Connection) => void;
  /** Called once after the listener and every connection are closed. */
  onClosed?: () => void;
  /** Time a TLS client has to finish its handshake, ms (default: `frameTimeoutMs`, else 10 s). */
  tlsHandshakeTimeoutMs?: number;
}

/** An open listener, whatever its kind: what the accept loop needs. */
interface OpenListener {
  listener: Deno.Listener;
  addr: Deno.Addr;
  close(): void;
}

/** The listen step: the one place that opens a server's socket, TCP, TLS or Unix. */
function openListener(listen: ListenSpec): OpenListener {
  if ("listener" in listen) {
    return {
      listener: listen.listener,
      addr: { transport: "unix", path: listen.path },
      close: () => listen.close(),
    };
  }
  const listener = listen.tls
    ? listenTls(listen.hostname ?? "127.0.0.1", listen.port ?? 0, listen.tls)
    : listenTcp(listen);
  return {
    listener,
    addr: listener.addr,
    close: () => {
      try {
        listener.close();
      } catch { /* closed */ }
    },
  };
}

/**
 * Errors of `accept()` caused by one connection (it reset or went away before
 * it was accepted): skipped at once, with no pause (SPEC 6.1).
 */
function isOneConnectionsFault(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.NotConnected || error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.ConnectionRefused || error instanceof Deno.errors.BrokenPipe;
}

/** Calls `log` at most once per `ms`, counting what it skipped. */
function throttled(ms: number, log: (skipped: number) => void): () => void {
  let last = -Infinity;
  let skipped = 0;
  return () => {
    const now = performance.now();
    if (now - last < ms) {
      skipped++;
      return;
    }
    last = now;
    log(skipped);
    skipped = 0;
  };
}

/**
 * Counts connections per peer address and in all, and refuses those over the
 * limits (SPEC 6.1).
 */
class Admission {
  #perIp = new Map<string, number>();
  #maxPerIp: number;
  #maxConnections: number;
  #exempt: CidrSet;
  total = 0;

  constructor(options: ServerLimits) {
    this.#maxPerIp = options.maxPerIp ?? DEFAULT_MAX_PER_IP;
    this.#maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#exempt = CidrSet.parse(options.exempt ?? DEFAULT_EXEMPT);
  }

  /** The peer's counting key, or undefined when it is not counted per address. */
  keyOf(addr: Deno.Addr): string | undefined {
    if (!("hostname" in addr) || this.#exempt.has(addr.hostname)) return undefined;
    return peerKey(addr.hostname);
  }

  /** Why `addr` is refused now, or undefined when it is admitted (and counted). */
  admit(key: string | undefined): string | undefined {
    if (this.total >= this.#maxConnections) return SERVER_FULL;
    if (key !== undefined) {
      const count = this.#perIp.get(key) ?? 0;
      if (count >= this.#maxPerIp) return TOO_MANY_FROM_ADDRESS;
      this.#perIp.set(key, count + 1);
    }
    this.total++;
    return undefined;
  }

  /** A connection admitted under `key` has closed. */
  release(key: string | undefined): void {
    this.total--;
    if (key === undefined) return;
    const count = (this.#perIp.get(key) ?? 1) - 1;
    if (count <= 0) this.#perIp.delete(key);
    else this.#perIp.set(key, count);
  }
}

/** How long accepting pauses when the process is out of file descriptors. */
const DESCRIPTOR_PAUSE_MS = 100;

/**
 * Listens on TCP (optionally TLS) or a Unix socket and runs `handler` for every
 * connection (a TLS connection once its handshake is done).
 *
 * Each connection's task is isolated: an error thrown by the handler is logged
 * and closes that connection only. When the handler returns, the connection
 * is ended (what it queued is still sent, for at most a second). A connection
 * accepted during shutdown is closed at once.
 *
 * Limits (SPEC 6.1, 6.2), all from `options`:
 * - an accept error caused by one connection is skipped at once; only running
 *   out of descriptors (EMFILE/ENFILE) pauses accepting, 100 ms, logged at
 *   most once a second;
 * - `maxPerIp` connections per address (addresses in `exempt` not counted) and
 *   `maxConnections` in all: one more is sent `refuse(text)` and closed;
 * - the {@link ReadPolicy} (framing-error reply, frame, register and idle
 *   timeouts) is given to every connection for `receiveFrames`, and one timer
 *   for the whole server enforces its time limits.
 *
 * A listen failure throws a `ListenError` (one line naming the address, with
 * its exit code) and opens nothing.
 *
 * @example
 * ```ts
 * import { serveStream } from "./serve.ts";
 * import { receiveFrames } from "./framing.ts";
 * import { TimestampChunkDecoder } from "../protocols/timestamp.ts";
 * await using server = serveStream({ port: 0 }, async (connection) => {
 *   for await (const chunk of receiveFrames(connection, new TimestampChunkDecoder())) {
 *     connection.send(chunk);
 *   }
 * }, { refuse: (text) => new TextEncoder().encode(`${text}\n`), maxPerIp: 16 });
 * console.assert(server.addr.transport === "tcp");
 * ```
 */
export function serveStream(
  listen: ListenSpec,
  handler: (connection: Connection) => Promise<void> | void,
  options: ServeStreamOptions = {},
): Server {
  const logger = options.logger ?? getLogger(["parley", "net"]);
  const admission = new Admission(options);
  const open = openListener(listen);
  // A handshake is a TLS client's first frame: it gets --frame-timeout (10 s even when that is off).
  const handshakeMs = options.tlsHandshakeTimeoutMs ||
    options.frameTimeoutMs || DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  const live = new Set<Connection>();
  // Connection tasks are counted, not kept: no promise chain or set entry per connection.
  let runningTasks = 0;
  let allTasksDone: PromiseWithResolvers<void> | undefined;
  const taskDone = () => {
    if (--runningTasks === 0) allTasksDone?.resolve();
  };
  const connectionOptions: ConnectionOptions = {
    maxQueueBytes: options.maxQueueBytes,
    logger,
    policy: options,
  };
  const sweep = new DeadlineSweep(live, options);
  let stopping = false;
  const finished = Promise.withResolvers<void>();

  const run = (connection: Connection, key: string | undefined): void => {
    const finish = () => {
      connection.close();
      live.delete(connection);
      admission.release(key);
      sweep.check();
      taskDone();
    };
    const failed = (error: unknown) => {
      try {
        logger.error("Connection {peer} failed: {error}", {
          peer: formatAddr(connection.remoteAddr),
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        });
      } catch { /* an error that cannot even be shown: the connection still ends */ }
      finish();
    };
    const ended = () => connection.end().then(finish, failed);
    let served: unknown;
    try {
      served = "handshake" in connection.conn
        ? completeHandshake(connection, handshakeMs, logger).then((done) =>
          done ? handler(connection) : undefined
        )
        : handler(connection);
    } catch (error) {
      return failed(error);
    }
    // Whatever a (loosely typed) handler returns, only a promise is waited for.
    if (served instanceof Promise) served.then(ended, failed);
    else void ended();
  };

  const logRefusals = throttled(
    1000,
    (skipped) =>
      logger.warn("Refusing connections over the limits ({skipped} more since the last report)", {
        skipped,
      }),
  );
  const refuse = (conn: Deno.Conn, text: string) => {
    logRefusals();
    logger.debug("Refused {peer}: {text}", { peer: formatAddr(conn.remoteAddr), text });
    const connection = new Connection(conn, { logger, maxQueueBytes: 64 * 1024 });
    try {
      const reply = options.refuse?.(text);
      if (reply) connection.send(reply);
    } catch (error) {
      logger.error("Refusal reply failed: {error}", { error: String(error) });
    }
    runningTasks++;
    connection.end(200).finally(taskDone);
  };

  const accepted = (conn: Deno.Conn) => {
    let remoteAddr: Deno.Addr;
    try {
      remoteAddr = conn.remoteAddr;
    } catch {
      return conn.close(); // gone already
    }
    const key = admission.keyOf(remoteAddr);
    const refusal = admission.admit(key);
    if (refusal !== undefined) return refuse(conn, refusal);
    const connection = new Connection(conn, connectionOptions);
    live.add(connection);
    sweep.admit(connection);
    runningTasks++;
    run(connection, key);
  };

  let lastAcceptError: unknown;
  const reportAcceptFailure = throttled(
    1000,
    (skipped) =>
      logger.warn("Accept failed: {error} ({skipped} more since the last report)", {
        error: String(lastAcceptError),
        skipped,
      }),
  );

  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await open.listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) return;
        if (isOneConnectionsFault(error)) {
          logger.debug("Accept skipped a connection that went away: {error}", {
            error: String(error),
          });
          continue;
        }
        // Out of descriptors (EMFILE/ENFILE) or something unknown: pause a little, log rarely.
        lastAcceptError = error;
        reportAcceptFailure();
        await new Promise((r) => setTimeout(r, DESCRIPTOR_PAUSE_MS));
        continue;
      }
      if (stopping) {
        conn.close();
        continue;
      }
      accepted(conn);
    }
  })();

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = () => {
    shutdownPromise ??= (async () => {
      stopping = true;
      open.close();
      await acceptLoop;
      await Promise.all([...live].map(async (connection) => {
        try {
          options.farewell?.(connection);
        } catch { /* best effort */ }
        await connection.end(500);
      }));
      if (runningTasks > 0) {
        allTasksDone = Promise.withResolvers<void>();
        await allTasksDone.promise;
      }
      sweep.stop();
      options.onClosed?.();
      finished.resolve();
    })();
    return shutdownPromise;
  };

  return {
    addr: open.addr,
    finished: finished.promise,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
