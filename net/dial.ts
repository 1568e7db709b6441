/**
 * Dialling out: TCP connect with a timeout and no-delay, and telling a gone
 * connection from a real error.
 *
 * @module
 */

/**
 * Opens a TCP connection, failing with `Deno.errors.TimedOut` after `timeoutMs`.
 * The connection gets `setNoDelay(true)`.
 *
 * @example
 * ```ts
 * import { connectWithTimeout } from "./dial.ts";
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

/**
 * True for the errors that mean "the connection is gone": reset by the peer,
 * or closed by this side while a read was pending. A client's reader treats
 * them as the end of the session.
 *
 * A framing error is not one of them: a `FrameError` (even one at the end of
 * input, a server that hung up mid-frame) is a protocol error the caller
 * reports, and any other `SyntaxError` is a real error.
 *
 * @example
 * ```ts
 * import { isConnectionGone } from "./dial.ts";
 * import { FrameError } from "../protocols/errors.ts";
 * console.assert(isConnectionGone(new Deno.errors.ConnectionReset("x")) && !isConnectionGone(new TypeError("x")));
 * console.assert(!isConnectionGone(new FrameError("stream ended inside a frame")));
 * ```
 */
export function isConnectionGone(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset || error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted || error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted || error instanceof Deno.errors.NotConnected;
}
