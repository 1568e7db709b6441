/**
 * The CRC node's operator endpoint (`--admin HOST:PORT`, SPEC 3.2 and 6.2):
 * a deliberately small HTTP/1.1 server for `GET /state` and `GET /metrics`.
 *
 * - At most {@link ADMIN_MAX_CONNECTIONS} connections are served at once; one
 *   more is answered `503` and closed.
 * - A connection idle for {@link ADMIN_IDLE_MS} (no complete request, no write
 *   progress) is closed.
 * - A request head is at most 8 KiB; anything else is `400` and closed.
 * - Bodies are iterables of text pieces written one at a time with
 *   `Transfer-Encoding: chunked`, so a large `/state` is never built whole.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import { formatAddr } from "../net/address.ts";
import { writeAll } from "../net/bytes.ts";
import type { Server } from "../net/serve.ts";

/** Connections served at once (SPEC 6.2). */
export const ADMIN_MAX_CONNECTIONS = 8;
/** Idle time after which an admin connection is closed, ms (SPEC 6.2). */
export const ADMIN_IDLE_MS = 10_000;
const MAX_HEAD_BYTES = 8 * 1024;

/** What a route answers. */
export interface AdminReply {
  /** HTTP status code. */
  status: number;
  /** Content type. */
  type: string;
  /** The body, as pieces of text produced on demand. */
  body: Iterable<string>;
}

/** Options of {@link serveAdmin}. */
export interface AdminOptions {
  /** Where to log. */
  logger: Logger;
  /** Idle limit per connection, ms (default {@link ADMIN_IDLE_MS}). */
  idleMs?: number;
  /** Connections served at once (default {@link ADMIN_MAX_CONNECTIONS}). */
  maxConnections?: number;
}

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  503: "Service Unavailable",
};
const encoder = new TextEncoder();

/** Answers plain text. */
export function textReply(status: number, text: string): AdminReply {
  return { status, type: "text/plain; charset=utf-8", body: [text] };
}

/**
 * Serves `route(method, path)` on `listener` until shutdown. The listener is
 * the caller's (opened first, so a failure to listen leaks nothing here).
 */
export function serveAdmin(
  listener: Deno.Listener,
  route: (method: string, url: URL) => AdminReply,
  options: AdminOptions,
): Server {
  const idleMs = options.idleMs ?? ADMIN_IDLE_MS;
  const max = options.maxConnections ?? ADMIN_MAX_CONNECTIONS;
  const live = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let stopping = false;
  const accepting = (async () => {
    while (true) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (stopping || error instanceof Deno.errors.BadResource) return;
        options.logger.warning("Admin accept failed: {error}", { error: String(error) });
        continue;
      }
      if (stopping) {
        conn.close();
        continue;
      }
      const task = live.size >= max ? refuse(conn) : session(conn, route, idleMs, live);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    }
  })();
  const finished = Promise.withResolvers<void>();
  let done: Promise<void> | undefined;
  const shutdown = () =>
    done ??= (async () => {
      stopping = true;
      try {
        listener.close();
      } catch { /* closed */ }
      await accepting;
      for (const conn of live) close(conn);
      await Promise.all([...tasks]);
      finished.resolve();
    })();
  options.logger.info("Admin endpoint on {addr}", { addr: formatAddr(listener.addr) });
  return {
    addr: listener.addr,
    finished: finished.promise,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed */ }
}

async function refuse(conn: Deno.Conn): Promise<void> {
  try {
    await writeAll(conn, head(503, "text/plain; charset=utf-8", "close", 17));
    await writeAll(conn, encoder.encode("too many clients\n"));
  } catch { /* gone */ }
  close(conn);
}

function head(status: number, type: string, connection: string, length?: number): Uint8Array {
  const size = length === undefined ? "Transfer-Encoding: chunked" : `Content-Length: ${length}`;
  return encoder.encode(
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\nContent-Type: ${type}\r\n${size}\r\n` +
      `Connection: ${connection}\r\n\r\n`,
  );
}

/** One keep-alive connection: requests in, replies out, closed when idle. */
async function session(
  conn: Deno.Conn,
  route: (method: string, url: URL) => AdminReply,
  idleMs: number,
  live: Set<Deno.Conn>,
): Promise<void> {
  live.add(conn);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => close(conn), idleMs);
  };
  touch();
  try {
    const reader = new HeadReader(conn);
    while (true) {
      const request = await reader.next();
      if (request === undefined) return;
      touch();
      if (request === "bad") {
        await writeAll(conn, head(400, "text/plain; charset=utf-8", "close", 12));
        await writeAll(conn, encoder.encode("bad request\n"));
        return;
      }
      const reply = request.method === "GET" || request.method === "HEAD"
        ? route(request.method, request.url)
        : textReply(405, "method not allowed\n");
      const keep = request.keepAlive ? "keep-alive" : "close";
      await writeAll(conn, head(reply.status, reply.type, keep));
      if (request.method !== "HEAD") {
        for (const piece of batches(reply.body)) {
          await writeAll(conn, piece);
          touch();
        }
        await writeAll(conn, encoder.encode("0\r\n\r\n"));
      }
      if (!request.keepAlive) return;
    }
  } catch {
    /* the peer went away or the idle timer closed it */
  } finally {
    clearTimeout(timer);
    live.delete(conn);
    close(conn);
  }
}

/** Joins text pieces into chunked-encoding chunks of about 64 KiB. */
function* batches(body: Iterable<string>): Generator<Uint8Array> {
  let pending: string[] = [];
  let size = 0;
  const flush = () => {
    const bytes = encoder.encode(pending.join(""));
    pending = [];
    size = 0;
    const out = new Uint8Array(bytes.length + 16);
    const prefix = encoder.encode(`${bytes.length.toString(16)}\r\n`);
    out.set(prefix);
    out.set(bytes, prefix.length);
    out.set(encoder.encode("\r\n"), prefix.length + bytes.length);
    return out.subarray(0, prefix.length + bytes.length + 2);
  };
  for (const piece of body) {
    if (piece.length === 0) continue;
    pending.push(piece);
    size += piece.length;
    if (size >= 64 * 1024) yield flush();
  }
  if (size > 0) yield flush();
}

interface Request {
  method: string;
  url: URL;
  keepAlive: boolean;
}

/** Reads request heads (bodies are not expected: a request with one is bad). */
class HeadReader {
  #conn: Deno.Conn;
  #held = "";
  #buffer = new Uint8Array(4096);
  #decoder = new TextDecoder();

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The next request, `bad`, or undefined at the end of the stream. */
  async next(): Promise<Request | "bad" | undefined> {
    while (!this.#held.includes("\r\n\r\n")) {
      if (this.#held.length > MAX_HEAD_BYTES) return "bad";
      const n = await this.#conn.read(this.#buffer);
      if (n === null) return undefined;
      this.#held += this.#decoder.decode(this.#buffer.subarray(0, n), { stream: true });
    }
    const end = this.#held.indexOf("\r\n\r\n");
    const lines = this.#held.slice(0, end).split("\r\n");
    this.#held = this.#held.slice(end + 4);
    const m = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0]);
    if (!m) return "bad";
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
    }
    const length = headers.get("content-length");
    if ((length !== undefined && length !== "0") || headers.has("transfer-encoding")) return "bad";
    const connection = headers.get("connection")?.toLowerCase();
    const keepAlive = m[3] === "1" ? connection !== "close" : connection === "keep-alive";
    let url: URL;
    try {
      url = new URL(m[2], "http://admin");
    } catch {
      return "bad";
    }
    return { method: m[1], url, keepAlive };
  }
}
