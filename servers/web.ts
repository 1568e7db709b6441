/**
 * Web client for IM (SPEC.md 9): one page served by `Deno.serve`, and a
 * WebSocket per browser tab bridged to an IM server over the normal IM
 * protocol, so browser users and terminal users share conversations.
 *
 * ```sh
 * deno run --allow-net servers/web.ts             # http://127.0.0.1:8080/, IM at 127.0.0.1:6666
 * deno run --allow-net servers/web.ts --im 127.0.0.1:6667 --port 8081
 * ```
 *
 * The WebSocket at `/ws` carries IM lines, one per text message and without
 * the LF: the page sends `REGISTER ["alice","online"]` and receives
 * `ONLINE_USERS {"alice":"online"}`. The bridge checks every line from the
 * browser with the IM codec and re-encodes it, so only well-formed client
 * commands reach the IM server; a bad line gets `ERROR "text"` back and the
 * socket stays open. Each WebSocket has its own TCP connection to the IM
 * server, opened when the socket opens and closed when it closes.
 *
 * Where SPEC.md is silent:
 * - The page files (`clients/web/`) are part of the module graph, imported as
 *   text, so the server needs no `--allow-read` (deno.json enables Deno's
 *   `raw-imports`).
 * - An upgrade whose `Origin` is not this server's own origin (`http://` plus
 *   the `Host` header) is refused with 403. A request without `Origin` (not a
 *   browser) is accepted: the check protects browsers from other sites' pages.
 *   Listening on loopback (the default), an upgrade must also name a loopback
 *   host (`localhost`, `127.x.x.x`, `[::1]`), against DNS rebinding.
 * - Section 6 on WebSockets: connections per address and in total are counted
 *   per WebSocket; one over the limit gets `ERROR "too many connections from
 *   your address"` and is closed (code 1008). A text message over
 *   `--max-message` bytes gets an `ERROR` and closes the socket (1009). A
 *   message may also carry its LF, several lines, or UTF-8 bytes in a binary
 *   frame (what `encodeIm()` gives); the bridge always sends text, one line a
 *   message, without the LF. A browser that stops reading is dropped
 *   once more than `--max-queue` bytes wait for it (its IM session ends at
 *   once; the socket itself is released when the browser goes or the server
 *   stops, because a WebSocket close cannot be forced past a full send buffer).
 *   A socket must be registered with the IM server within `--register-timeout`.
 * - The IM server unreachable or gone: the page gets `ERROR` with the reason and
 *   the socket closes with code 1011 (or 1013 when it could not connect); the
 *   page reconnects by itself.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  encodeIm,
  IM_CLIENT_COMMANDS,
  IM_MAX_LINE_BYTES,
  IM_PORT,
  IM_TEXTS,
  ImLineDecoder,
  ImMessageError,
  parseImLine,
} from "../protocols/im.ts";
import { isFrameError } from "../protocols/errors.ts";
import { Connection, DEFAULT_MAX_QUEUE_BYTES } from "../net/connection.ts";
import {
  connectWithTimeout,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type TlsDialOptions,
} from "../net/dial.ts";
import { CidrSet, formatAddr, formatHostPort, peerKey } from "../net/address.ts";
import {
  DEFAULT_EXEMPT,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PER_IP,
  type Server,
  SERVER_FULL,
  type ServerLimits,
  type TlsCertificate,
  TOO_MANY_FROM_ADDRESS,
} from "../net/serve.ts";
import { DEFAULT_REGISTER_TIMEOUT_MS, receiveFrames } from "../net/framing.ts";
import { listenError } from "../net/listen.ts";
import {
  type CommandSpec,
  intValue,
  portValue,
  runCommand,
  SERVER_FLAGS,
  serverBasics,
  TLS_CLIENT_FLAGS,
  TLS_SERVER_FLAGS,
  tlsClientOptions,
  UsageError,
} from "../cli/command.ts";
import { runServer } from "../cli/run_server.ts";
import indexHtml from "../clients/web/index.html" with { type: "text" };
import styleCss from "../clients/web/style.css" with { type: "text" };
import appJs from "../clients/web/app.js" with { type: "text" };
import modelJs from "../clients/web/model.js" with { type: "text" };
import faviconSvg from "../clients/web/favicon.svg" with { type: "text" };

/** Default port of the web server. */
export const WEB_PORT = 8080;

/** The texts the bridge itself sends to a page as `ERROR`. */
export const WEB_TEXTS = {
  tooManyFromAddress: TOO_MANY_FROM_ADDRESS,
  tooManyConnections: SERVER_FULL,
  binary: "this kind of message is not supported; send IM lines as text",
  notUtf8: "a binary message must be UTF-8 text",
  tooLarge: (bytes: number, limit: number): string =>
    `Cannot decode frame: message of ${bytes} bytes exceeds limit of ${limit} bytes`,
  serverCommand: (command: string): string => `${command} is sent by the server, not by clients`,
  imUnreachable: (addr: string): string => `cannot reach the IM server at ${addr}`,
  imClosed: "the IM server closed the connection",
  registerTimeout: "registration timed out",
  tooSlow: "too much data waiting for your browser",
  shuttingDown: IM_TEXTS.shuttingDown,
} as const;

/**
 * Options of {@link serveWeb}. The shared limits apply per WebSocket:
 * `maxPerIp`, `exempt` and `maxConnections` count sockets, `maxQueueBytes` is
 * what may wait for one browser, `registerTimeoutMs` the time to register.
 * (`frameTimeoutMs` has nothing to act on: Deno reads WebSocket frames itself.)
 */
export interface WebServerOptions extends ServerLimits {
  /** Address to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; default 8080, 0 picks a free one. */
  port?: number;
  /** The IM server every WebSocket is bridged to; default 127.0.0.1:6666. */
  im?: { hostname: string; port: number };
  /** Longest text message a browser may send, in bytes (default 64 KiB, the IM line limit). */
  maxMessageBytes?: number;
  /** Time to connect to the IM server, ms (default 5 s). */
  connectTimeoutMs?: number;
  /** Serve HTTPS (and so `wss:`) with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** Reach the IM server with TLS (`--tls`, `--ca`). */
  imTls?: TlsDialOptions;
}

/** A running web server. */
export interface WebServer extends Server {
  /** The number of WebSockets open now. */
  sockets(): number;
}

const logger = getLogger(["parley", "web"]);

/** The page files, by URL path. */
const FILES: Record<string, { body: string; type: string }> = {
  "/": { body: indexHtml, type: "text/html; charset=utf-8" },
  "/index.html": { body: indexHtml, type: "text/html; charset=utf-8" },
  "/style.css": { body: styleCss, type: "text/css; charset=utf-8" },
  "/app.js": { body: appJs, type: "text/javascript; charset=utf-8" },
  "/model.js": { body: modelJs, type: "text/javascript; charset=utf-8" },
  "/favicon.svg": { body: faviconSvg, type: "image/svg+xml" },
};

/** The Content-Security-Policy of every response: only this server's own files, no inline code. */
export const WEB_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const SECURITY_HEADERS = {
  "content-security-policy": WEB_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-cache",
};

function textResponse(status: number, text: string, extra: Record<string, string> = {}): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...extra },
  });
}

/** Serves a page file, or 404/405. */
function serveFile(request: Request): Response {
  const path = new URL(request.url).pathname;
  const file = FILES[path];
  if (!file) return textResponse(404, "not found");
  if (request.method !== "GET" && request.method !== "HEAD") {
    return textResponse(405, "method not allowed", { allow: "GET, HEAD" });
  }
  return new Response(request.method === "HEAD" ? null : file.body, {
    headers: { ...SECURITY_HEADERS, "content-type": file.type },
  });
}

/** True when the upgrade comes from this server's own page (or from no browser at all). */
export function sameOrigin(request: Request): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) return true;
  const host = request.headers.get("host");
  return host !== null && (origin === `http://${host}` || origin === `https://${host}`);
}

const LOOPBACK_NAMES = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/**
 * True unless this server listens on loopback only and the request names
 * another host: a page of some other site whose name was made to resolve to
 * 127.0.0.1 (DNS rebinding) is same-origin with itself, so the `Host` is what
 * gives it away.
 */
export function hostAllowed(request: Request, listenHostname: string): boolean {
  if (!LOOPBACK_NAMES.test(listenHostname) && listenHostname !== "::1") return true;
  const host = (request.headers.get("host") ?? "").replace(/:\d+$/, "");
  return LOOPBACK_NAMES.test(host);
}

/** Everything one bridged WebSocket needs from the server around it. */
interface BridgeContext {
  im: { hostname: string; port: number };
  imTls?: TlsDialOptions;
  maxQueueBytes: number;
  maxMessageBytes: number;
  registerTimeoutMs: number;
  connectTimeoutMs: number;
}

const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 length of a string, computed only when it could be over `limit`. */
function overLimit(text: string, limit: number): number | undefined {
  if (text.length * 3 <= limit) return undefined;
  const bytes = encoder.encode(text).length;
  return bytes > limit ? bytes : undefined;
}

/**
 * One browser tab: a WebSocket and its TCP connection to the IM server.
 * `done` resolves when both are closed.
 */
class Bridge {
  readonly socket: WebSocket;
  readonly done: Promise<void>;
  #ctx: BridgeContext;
  #im?: Connection;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #registered = false;
  #registerTimer?: ReturnType<typeof setTimeout>;
  #closed = false;
  #socketClosed = Promise.withResolvers<void>();
  #imTask: Promise<void> = Promise.resolve();
  #peer: string;

  constructor(socket: WebSocket, ctx: BridgeContext, peer: string) {
    this.socket = socket;
    this.#ctx = ctx;
    this.#peer = peer;
    socket.onopen = () => {
      this.#open().catch((error) => {
        logger.error("WebSocket of {peer} failed: {error}", { peer, error: String(error) });
        this.close(1011, "internal error");
      });
    };
    socket.onmessage = (event) => {
      try {
        this.#fromBrowser(event.data);
      } catch (error) {
        // Nothing a browser sends may take the server down: this socket alone ends.
        logger.error("WebSocket of {peer} failed: {error}", { peer, error: String(error) });
        this.close(1011, "internal error");
      }
    };
    socket.onclose = () => {
      this.#socketClosed.resolve();
      this.#endIm(true);
    };
    socket.onerror = () => {/* onclose follows */};
    this.done = this.#socketClosed.promise.then(() => this.#imTask);
  }

  /** Sends one line to the browser, dropping it if too much is waiting already. */
  toBrowser(line: string): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    if (this.socket.bufferedAmount + line.length > this.#ctx.maxQueueBytes) {
      logger.warn("Dropping {peer}: more than {limit} bytes wait for it", {
        peer: this.#peer,
        limit: this.#ctx.maxQueueBytes,
      });
      this.close(1008, WEB_TEXTS.tooSlow, false);
      return;
    }
    this.socket.send(line);
  }

  /** Sends `ERROR "text"` to the browser. */
  error(text: string): void {
    this.toBrowser(`ERROR ${JSON.stringify(text)}`);
  }

  /** Closes both sides; with `tell`, the browser first gets `ERROR reason`. */
  close(code: number, reason: string, tell = true): void {
    if (tell) this.error(reason);
    if (
      this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING
    ) {
      try {
        this.socket.close(code, reason.slice(0, 120));
      } catch { /* already closing */ }
    }
    this.#endIm(true);
  }

  async #open(): Promise<void> {
    const { hostname, port } = this.#ctx.im;
    if (this.#ctx.registerTimeoutMs > 0) {
      this.#registerTimer = setTimeout(() => {
        if (!this.#registered) this.close(1008, WEB_TEXTS.registerTimeout);
      }, this.#ctx.registerTimeoutMs);
    }
    let conn: Deno.Conn;
    try {
      conn = await connectWithTimeout(hostname, port, this.#ctx.connectTimeoutMs, this.#ctx.imTls);
    } catch (error) {
      logger.warn("Cannot reach the IM server at {addr}: {error}", {
        addr: formatHostPort(hostname, port),
        error: String(error),
      });
      this.close(1013, WEB_TEXTS.imUnreachable(formatHostPort(hostname, port)));
      return;
    }
    if (this.#closed) {
      conn.close();
      return;
    }
    const im = new Connection(conn, { maxQueueBytes: this.#ctx.maxQueueBytes, logger });
    this.#im = im;
    for (const line of this.#pending) im.send(line);
    this.#pending = [];
    this.#imTask = this.#fromIm(im);
  }

  /** Forwards the IM server's lines to the browser until either side closes. */
  async #fromIm(im: Connection): Promise<void> {
    const decoder = new ImLineDecoder({ maxLineBytes: 1024 * 1024 });
    try {
      for await (const line of receiveFrames(im, decoder)) this.#forward(line);
    } catch (error) {
      // A line over 1 MiB (the client-side limit) cannot be framed: this bridge ends.
      logger.warn("IM link of {peer} failed: {error}", {
        peer: this.#peer,
        error: isFrameError(error) ? error.message : String(error),
      });
    } finally {
      im.close();
      if (!this.#closed) this.close(1011, WEB_TEXTS.imClosed);
    }
  }

  /** Passes one line from the IM server on; one that does not parse is skipped, as clients do. */
  #forward(line: string): void {
    let command: string;
    try {
      command = parseImLine(line).command;
    } catch (error) {
      if (!(error instanceof ImMessageError)) throw error;
      logger.debug("Skipping a line from the IM server: {error}", { error: error.message });
      return;
    }
    if (command === "ONLINE_USERS") this.#setRegistered();
    this.toBrowser(line);
  }

  #setRegistered(): void {
    this.#registered = true;
    clearTimeout(this.#registerTimer);
  }

  /**
   * One WebSocket message from the browser: one IM line, with or without its
   * LF (several LF-separated lines are taken one by one), as text or as UTF-8
   * bytes.
   */
  #fromBrowser(data: unknown): void {
    if (this.#closed) return;
    let text: string;
    if (typeof data === "string") {
      const size = overLimit(data, this.#ctx.maxMessageBytes);
      if (size !== undefined) {
        return this.close(1009, WEB_TEXTS.tooLarge(size, this.#ctx.maxMessageBytes));
      }
      text = data;
    } else if (data instanceof ArrayBuffer) {
      if (data.byteLength > this.#ctx.maxMessageBytes) {
        return this.close(1009, WEB_TEXTS.tooLarge(data.byteLength, this.#ctx.maxMessageBytes));
      }
      try {
        text = strictUtf8.decode(data);
      } catch {
        return this.error(WEB_TEXTS.notUtf8);
      }
    } else return this.close(1003, WEB_TEXTS.binary);
    const lines = text.split("\n");
    if (lines.length > 1 && lines.at(-1) === "") lines.pop();
    for (const line of lines) this.#lineFromBrowser(line);
  }

  #lineFromBrowser(text: string): void {
    let message;
    try {
      message = parseImLine(text);
    } catch (error) {
      if (!(error instanceof ImMessageError)) throw error;
      return this.error(error.message);
    }
    if (!(IM_CLIENT_COMMANDS as readonly string[]).includes(message.command)) {
      return this.error(WEB_TEXTS.serverCommand(message.command));
    }
    const line = encodeIm(message);
    if (this.#im) {
      this.#im.send(line);
      return;
    }
    // Still connecting to the IM server: keep the lines, within the same limit.
    this.#pendingBytes += line.length;
    if (this.#pendingBytes > this.#ctx.maxQueueBytes) return this.close(1008, WEB_TEXTS.tooSlow);
    this.#pending.push(line);
  }

  /** Closes the IM side; `goodbye` sends GOODBYE first (the tab went away). */
  #endIm(goodbye: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#registerTimer);
    const im = this.#im;
    if (!im || im.closed) return;
    if (goodbye && this.#registered) im.send(encodeIm({ command: "GOODBYE" }));
    void im.end(500);
  }
}

/** Counts WebSockets per address (outside `exempt`) and in total. */
class Admission {
  #perIp = new Map<string, number>();
  #total = 0;
  constructor(readonly maxPerIp: number, readonly maxTotal: number, readonly exempt: CidrSet) {}

  /** Takes a place for `address`, or returns the refusal text. */
  enter(address: string): string | undefined {
    if (this.#total >= this.maxTotal) return WEB_TEXTS.tooManyConnections;
    const key = peerKey(address);
    const counted = !this.exempt.has(address);
    const n = this.#perIp.get(key) ?? 0;
    if (counted && n >= this.maxPerIp) return WEB_TEXTS.tooManyFromAddress;
    this.#total++;
    if (counted) this.#perIp.set(key, n + 1);
    return undefined;
  }

  /** Gives back the place `enter` took. */
  leave(address: string): void {
    this.#total--;
    const key = peerKey(address);
    const n = this.#perIp.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#perIp.delete(key);
    else this.#perIp.set(key, n - 1);
  }
}

/** Upgrades a request that passed the origin check, refusing it when over a limit. */
function upgrade(
  request: Request,
  address: string,
  admission: Admission,
  ctx: BridgeContext,
  bridges: Set<Bridge>,
): Response {
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  const refusal = admission.enter(address);
  if (refusal) {
    logger.info("Refusing a WebSocket from {address}: {refusal}", { address, refusal });
    socket.onopen = () => {
      socket.send(`ERROR ${JSON.stringify(refusal)}`);
      socket.close(1008, refusal);
    };
    return response;
  }
  const bridge = new Bridge(socket, ctx, address);
  bridges.add(bridge);
  bridge.done.finally(() => {
    bridges.delete(bridge);
    admission.leave(address);
  });
  return response;
}

/**
 * Starts the web server: the page, and a WebSocket bridge to the IM server at `/ws`.
 *
 * @example
 * ```ts
 * import { serveWeb } from "./web.ts";
 * await using server = serveWeb({ port: 0, im: { hostname: "127.0.0.1", port: 6666 } });
 * const page = await fetch(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`);
 * console.assert((await page.text()).includes("<title>Parley</title>"));
 * ```
 */
export function serveWeb(options: WebServerOptions = {}): WebServer {
  const ctx: BridgeContext = {
    im: options.im ?? { hostname: "127.0.0.1", port: IM_PORT },
    imTls: options.imTls,
    maxQueueBytes: options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES,
    maxMessageBytes: options.maxMessageBytes ?? IM_MAX_LINE_BYTES,
    registerTimeoutMs: options.registerTimeoutMs ?? DEFAULT_REGISTER_TIMEOUT_MS,
    connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
  };
  const admission = new Admission(
    options.maxPerIp ?? DEFAULT_MAX_PER_IP,
    options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    CidrSet.parse(options.exempt ?? DEFAULT_EXEMPT),
  );
  const bridges = new Set<Bridge>();
  let stopping = false;
  const listenHostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? WEB_PORT;
  let http: Deno.HttpServer<Deno.NetAddr>;
  try {
    http = Deno.serve({
      hostname: listenHostname,
      port,
      ...(options.tls ? { cert: options.tls.cert, key: options.tls.key } : {}),
      onListen: () => {},
    }, handler);
  } catch (error) {
    throw listenError(error, formatHostPort(listenHostname, port));
  }

  function handler(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response {
    if (new URL(request.url).pathname !== "/ws") return serveFile(request);
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return textResponse(426, "this address takes WebSocket upgrades only", {
        upgrade: "websocket",
      });
    }
    if (stopping) return textResponse(503, WEB_TEXTS.shuttingDown);
    if (!hostAllowed(request, listenHostname)) {
      logger.info("Refusing a WebSocket for host {host}", { host: request.headers.get("host") });
      return textResponse(403, "WebSocket upgrades for another host name are refused");
    }
    if (!sameOrigin(request)) {
      logger.info("Refusing a WebSocket from origin {origin}", {
        origin: request.headers.get("origin"),
      });
      return textResponse(403, "WebSocket upgrades from another origin are refused");
    }
    return upgrade(request, info.remoteAddr.hostname, admission, ctx, bridges);
  }

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = () =>
    shutdownPromise ??= (async () => {
      stopping = true;
      for (const bridge of bridges) bridge.close(1001, WEB_TEXTS.shuttingDown);
      await http.shutdown();
      await Promise.all([...bridges].map((b) => b.done));
    })();
  logger.info("Listening on {addr} (open {url} in a browser; IM server {im})", {
    addr: formatAddr(http.addr),
    url: `${options.tls ? "https" : "http"}://${formatAddr(http.addr)}/`,
    im: formatHostPort(ctx.im.hostname, ctx.im.port),
  });
  return {
    addr: http.addr,
    finished: http.finished.then(() => shutdownPromise),
    shutdown,
    [Symbol.asyncDispose]: shutdown,
    sockets: () => bridges.size,
  };
}

/** Reads `--im HOST:PORT` (`[::1]:6666` for IPv6). */
export function imAddress(value: unknown): { hostname: string; port: number } {
  const text = String(value);
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--im must be HOST:PORT, got '${text}'`);
  return { hostname: m[1], port: portValue(m[2], "im") };
}

/** The command-line interface of `servers/web.ts`. */
export const WEB_COMMAND: CommandSpec = {
  name: "servers/web.ts",
  usage: "[--port PORT] [--im HOST:PORT] ...",
  summary: "Web client for IM: serves the chat page and bridges each browser tab to the IM server.",
  flags: {
    port: {
      type: "string",
      default: String(WEB_PORT),
      value: "PORT",
      description: "port; 0 picks one",
    },
    im: {
      type: "string",
      default: `127.0.0.1:${IM_PORT}`,
      value: "HOST:PORT",
      description: "the IM server browsers are bridged to",
    },
    "max-message": {
      type: "string",
      default: String(IM_MAX_LINE_BYTES),
      value: "BYTES",
      description: "longest WebSocket message a browser may send",
    },
    ...TLS_SERVER_FLAGS,
    tls: { ...TLS_CLIENT_FLAGS.tls, description: "reach the IM server (--im) with TLS" },
    ca: TLS_CLIENT_FLAGS.ca,
    ...SERVER_FLAGS,
  },
};

/** Runs the web server from command-line arguments until SIGINT/SIGTERM. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, WEB_COMMAND, async ({ values }) => {
    const options: WebServerOptions = {
      ...serverBasics(values),
      port: portValue(values.port),
      im: imAddress(values.im),
      maxMessageBytes: intValue(values["max-message"], "max-message", 16),
      imTls: tlsClientOptions(values),
    };
    await runServer(values, logger, () => serveWeb(options));
  });
}

if (import.meta.main) await main(Deno.args);
