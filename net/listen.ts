/**
 * Opening listeners (SPEC 6.7): one small step that turns every way listening
 * can fail into a {@link ListenError} of one line with its exit code, and Unix
 * socket files that are replaced only when stale and removed only when still
 * this process's own.
 *
 * @module
 */

import { formatHostPort } from "./address.ts";

/**
 * Listening failed. The message is one line naming the address
 * (`127.0.0.1:55555 is already in use`); `exitCode` is 1 for an address in use
 * (a refused permission stays Deno's own error, exit 1 too), 2 for a bad value (a name that does not resolve, an
 * address this machine does not have).
 *
 * @example
 * ```ts
 * import { ListenError } from "./listen.ts";
 * const error = new ListenError("127.0.0.1:55555 is already in use", 1);
 * console.assert(error.exitCode === 1 && error.name === "ListenError");
 * ```
 */
export class ListenError extends Error {
  /** The exit code an entry point should end with. */
  readonly exitCode: 1 | 2;

  /** Makes a listen error; `cause` is the platform's error. */
  constructor(message: string, exitCode: 1 | 2, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "ListenError";
    this.exitCode = exitCode;
  }
}

/**
 * Turns the error of a failed `Deno.listen` (or `Deno.serve`, `listenTls`)
 * on `address` into a {@link ListenError}; other errors are returned as they
 * are. For listeners opened outside this module (the CRC admin endpoint).
 *
 * @example
 * ```ts
 * import { ListenError, listenError } from "./listen.ts";
 * const error = listenError(new Deno.errors.AddrInUse("os error 98"), "127.0.0.1:55555");
 * console.assert(error instanceof ListenError && error.message === "127.0.0.1:55555 is already in use");
 * ```
 */
export function listenError(error: unknown, address: string): unknown {
  const cause = { cause: error };
  if (error instanceof ListenError) return error;
  if (error instanceof Deno.errors.AddrInUse) {
    return new ListenError(`${address} is already in use`, 1, cause);
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return new ListenError(
      `cannot listen on ${address}: no such address on this machine`,
      2,
      cause,
    );
  }
  if (error instanceof Error && /lookup address|not known|resolve/i.test(error.message)) {
    return new ListenError(`cannot listen on ${address}: the name does not resolve`, 2, cause);
  }
  if (error instanceof TypeError || error instanceof RangeError) {
    return new ListenError(`cannot listen on ${address}: ${firstLine(error)}`, 2, cause);
  }
  return error;
}

function firstLine(error: Error): string {
  return error.message.split("\n")[0];
}

/** Where a TCP server listens. */
export interface TcpListenSpec {
  /** Always `tcp` (the default). */
  transport?: "tcp";
  /** Address or name to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; 0 (the default) picks a free one. */
  port?: number;
}

/**
 * Listens on TCP; any failure is a {@link ListenError} naming the address.
 *
 * @example
 * ```ts
 * import { ListenError, listenTcp } from "./listen.ts";
 * using first = listenTcp({ port: 0 });
 * const port = (first.addr as Deno.NetAddr).port;
 * let error: unknown;
 * try { listenTcp({ port }).close(); } catch (e) { error = e; }
 * console.assert(error instanceof ListenError && error.message === `127.0.0.1:${port} is already in use`);
 * ```
 */
export function listenTcp(spec: TcpListenSpec = {}): Deno.TcpListener {
  const hostname = spec.hostname ?? "127.0.0.1";
  const port = spec.port ?? 0;
  try {
    return Deno.listen({ hostname, port });
  } catch (error) {
    throw listenError(error, formatHostPort(hostname, port));
  }
}

/** A Unix socket listener that owns its socket file. */
export interface UnixListener {
  /** The listener (its `addr` may name a temporary path; use {@link UnixListener.path}). */
  readonly listener: Deno.Listener;
  /** The socket path clients connect to. */
  readonly path: string;
  /** Closes the listener and removes the socket file if it is still this one's. */
  close(): void;
}

/**
 * Listens on a Unix socket at `path` (SPEC 6.7):
 * - a live server answering at `path` is a {@link ListenError} "PATH is
 *   already in use" (exit 1), and its socket is left alone;
 * - a stale socket file (nobody answers) is replaced; anything that is not a
 *   socket is never touched ("PATH exists and is not a socket", exit 1);
 * - on close, the file is removed only if it is still the one this listener
 *   created (same device and inode): a later server's socket survives.
 *
 * The socket is bound at a private temporary name in the same directory and
 * renamed into place, so the replacement is atomic and Deno's own unlink on
 * close hits the temporary name, never a successor's file.
 *
 * @example
 * ```ts
 * import { listenUnix } from "./listen.ts";
 * const dir = await Deno.makeTempDir();
 * const unix = await listenUnix(`${dir}/demo.sock`);
 * console.assert((await Deno.lstat(`${dir}/demo.sock`)).isSocket === true);
 * unix.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listenUnix(path: string): Promise<UnixListener> {
  let existing: Deno.FileInfo | undefined;
  try {
    existing = Deno.lstatSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw listenError(error, path);
  }
  if (existing && !existing.isSocket) {
    throw new ListenError(`${path} exists and is not a socket`, 1);
  }
  if (existing && await answers(path)) throw new ListenError(`${path} is already in use`, 1);
  const slash = path.lastIndexOf("/");
  const temporary = `${path.slice(0, slash + 1)}.${Deno.pid}.${
    Math.random().toString(36).slice(2, 8)
  }.${path.slice(slash + 1)}`;
  // sun_path holds 107 bytes; a longer temporary name falls back to binding in place.
  const direct = new TextEncoder().encode(temporary).length > 107;
  let listener: Deno.Listener;
  try {
    if (direct && existing) Deno.removeSync(path);
    listener = Deno.listen({ transport: "unix", path: direct ? path : temporary });
    if (!direct) Deno.renameSync(temporary, path);
  } catch (error) {
    throw listenError(error, path);
  }
  const own = Deno.lstatSync(path);
  let closed = false;
  return {
    listener,
    path,
    close() {
      if (closed) return;
      closed = true;
      if (!direct) removeIfOwn(path, own);
      try {
        listener.close();
      } catch { /* closed */ }
    },
  };
}

function removeIfOwn(path: string, own: Deno.FileInfo): void {
  try {
    const now = Deno.lstatSync(path);
    if (now.ino === own.ino && now.dev === own.dev) Deno.removeSync(path);
  } catch { /* already gone */ }
}

/** True when a server accepts a connection at the Unix socket `path`. */
async function answers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}
