/**
 * The accept loop and the server object every Parley server returns (the shape
 * of `Deno.serve`).
 *
 * @module
 */

import { getLogger, type Logger } from "@logtape/logtape";
import { Connection, type ConnectionOptions } from "./connection.ts";
import { formatAddr } from "./address.ts";

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

/** Where a stream server listens; with `tls`, every connection speaks TLS only. */
export type ListenSpec =
  | { transport?: "tcp"; hostname?: string; port?: number; tls?: TlsCertificate }
  | { transport: "unix"; path: string };

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
 * Opens the listener `listen` describes: TCP, TCP with TLS (`Deno.listenTls`;
 * the handshake happens later, in each connection's own task), or a Unix socket.
 * A certificate or key that Deno refuses throws {@link TlsSetupError}.
 */
export function openListener(listen: ListenSpec): Deno.Listener {
  if (listen.transport === "unix") return Deno.listen({ transport: "unix", path: listen.path });
  const hostname = listen.hostname ?? "127.0.0.1";
  const port = listen.port ?? 0;
  if (!listen.tls) return Deno.listen({ hostname, port });
  try {
    return Deno.listenTls({ hostname, port, cert: listen.tls.cert, key: listen.tls.key });
  } catch (error) {
    const isDenoError = Object.values(Deno.errors).some((kind) => error instanceof kind);
    if (isDenoError && !(error instanceof Deno.errors.InvalidData)) throw error; // address in use, ...
    throw new TlsSetupError(
      `the TLS certificate or key was refused: ${error instanceof Error ? error.message : error}`,
      { cause: error },
    );
  }
}

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

/** Options of {@link serveStream}. */
export interface ServeStreamOptions extends ConnectionOptions {
  /** Called for each connection once shutdown begins, before it is closed (a goodbye frame). */
  farewell?: (connection: Connection) => void;
  /** Called once after the listener and every connection are closed. */
  onClosed?: () => void;
  /** Time a TLS client has to finish its handshake, ms (default 10 s). */
  tlsHandshakeTimeoutMs?: number;
}

/**
 * Listens on TCP (optionally TLS) or a Unix socket and runs `handler` for every
 * connection (a TLS connection once its handshake is done).
 *
 * Each connection's task is isolated: an error thrown by the handler is logged
 * and closes that connection only. The connection is closed when the handler
 * returns. A connection accepted during shutdown is closed at once.
 *
 * @example
 * ```ts
 * import { serveStream } from "./serve.ts";
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
  const listener = openListener(listen);
  const handshakeMs = options.tlsHandshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  const live = new Set<Connection>();
  const tasks = new Set<Promise<void>>();
  let stopping = false;
  const finished = Promise.withResolvers<void>();

  const run = async (connection: Connection) => {
    try {
      if (!(await completeHandshake(connection, handshakeMs, logger))) return;
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
