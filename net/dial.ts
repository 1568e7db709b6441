/**
 * Dialling out: TCP connect with a timeout and no-delay, and telling a gone
 * connection from a real error.
 *
 * @module
 */

/** How a client checks a TLS server (`--tls`, `--ca`). */
export interface TlsDialOptions {
  /** PEM certificates trusted besides the system roots (a private CA, `--ca FILE`). */
  caCerts?: string[];
  /** The name the certificate must carry (default: the host dialled). */
  serverName?: string;
}

/**
 * The TLS handshake failed or timed out: a wrong CA, a name the certificate
 * does not carry, or a server that does not speak TLS. The message is one line
 * that says which.
 */
export class TlsHandshakeError extends Error {
  /** Makes the error; `message` is shown to the user as it is. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TlsHandshakeError";
  }
}

/** The default time allowed to connect (TCP and, with TLS, the handshake), ms. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;

/**
 * Opens a TCP connection, failing with `Deno.errors.TimedOut` after `timeoutMs`.
 * The connection gets `setNoDelay(true)`.
 *
 * With `tls`, the connection is then upgraded with `Deno.startTls` (rustls, the
 * engine of `Deno.connectTls`, which has neither a timeout nor `setNoDelay`)
 * and the handshake is completed within the same `timeoutMs`; a failed or
 * timed-out handshake throws {@link TlsHandshakeError}.
 *
 * @example
 * ```ts
 * import { connectWithTimeout } from "./dial.ts";
 * const result = await connectWithTimeout("127.0.0.1", 1, 200).catch((e) => e);
 * console.assert(result instanceof Error);
 * ```
 */
export function connectWithTimeout(
  hostname: string,
  port: number,
  timeoutMs: number,
): Promise<Deno.TcpConn>;
/** Opens a TCP connection, with TLS when `tls` is given. */
export function connectWithTimeout(
  hostname: string,
  port: number,
  timeoutMs: number,
  tls: TlsDialOptions | undefined,
): Promise<Deno.TcpConn | Deno.TlsConn>;
export async function connectWithTimeout(
  hostname: string,
  port: number,
  timeoutMs: number,
  tls?: TlsDialOptions,
): Promise<Deno.TcpConn | Deno.TlsConn> {
  const deadline = performance.now() + timeoutMs;
  const signal = AbortSignal.timeout(timeoutMs);
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname, port, signal });
    conn.setNoDelay(true);
  } catch (error) {
    if (signal.aborted) {
      throw new Deno.errors.TimedOut(
        `Connecting to ${hostname}:${port} timed out after ${timeoutMs} ms`,
      );
    }
    throw error;
  }
  if (!tls) return conn;
  return await startTlsWithin(conn, { hostname, tls, ms: deadline - performance.now() });
}

async function startTlsWithin(
  conn: Deno.TcpConn,
  { hostname, tls, ms }: { hostname: string; tls: TlsDialOptions; ms: number },
): Promise<Deno.TlsConn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let secure: Deno.TlsConn | undefined;
  try {
    secure = await Deno.startTls(conn, {
      hostname: tls.serverName ?? hostname.replace(/^\[(.*)\]$/, "$1"),
      caCerts: tls.caCerts,
    });
    const open = secure;
    const handshake = open.handshake();
    handshake.catch(() => {}); // after a timeout, closing the connection ends it
    await Promise.race([
      handshake,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(
            new TlsHandshakeError(
              `no TLS handshake within the connect timeout (is it a TLS server?)`,
            ),
          );
        }, Math.max(1, ms));
      }),
    ]);
    return open;
  } catch (error) {
    try {
      (secure ?? conn).close();
    } catch { /* closed */ }
    if (error instanceof TlsHandshakeError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    const hint = /UnknownIssuer/.test(reason)
      ? " (does --ca name the CA that signed it?)"
      : /CaUsedAsEndEntity/.test(reason)
      ? " (the server's certificate is a CA's: make it with basicConstraints=critical,CA:FALSE)"
      : "";
    throw new TlsHandshakeError(`TLS handshake failed: ${reason}${hint}`, { cause: error });
  } finally {
    clearTimeout(timer);
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
