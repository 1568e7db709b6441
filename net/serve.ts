/**
 * The accept loop and the server object every Parley server returns (the shape
 * of `Deno.serve`).
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
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
