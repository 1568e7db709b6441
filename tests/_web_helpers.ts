/**
 * Helpers for the web bridge tests: a WebSocket peer that collects messages
 * with timeouts, a raw WebSocket handshake for tests that must not read, and
 * a headless Chromium for the browser tests.
 *
 * @module
 */

import puppeteer, { type Browser } from "puppeteer-core";
import { type ImServer, serveIm } from "../servers/im.ts";
import { serveWeb, type WebServer, type WebServerOptions } from "../servers/web.ts";
import { writeAll } from "../net/bytes.ts";
import { portOf, within } from "./_helpers.ts";

/** A WebSocket client that keeps every text message and how the socket closed. */
export class WsPeer {
  readonly socket: WebSocket;
  readonly messages: string[] = [];
  /** Resolves when the socket has closed, with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(url: string, headers: Record<string, string> = {}) {
    this.socket = new WebSocket(url, { headers });
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = () => resolve();
      this.socket.onerror = () => reject(new Error(`WebSocket to ${url} failed`));
    });
    this.opened.catch(() => {});
    this.socket.onmessage = (event) => {
      this.messages.push(String(event.data));
      this.#wake();
    };
    this.closed = new Promise((resolve) => {
      this.socket.onclose = (event) => {
        resolve({ code: event.code, reason: event.reason });
        this.#wake();
      };
    });
  }

  /** Opens a socket to the bridge at `port` and waits until it is open. */
  static async open(port: number, headers: Record<string, string> = {}): Promise<WsPeer> {
    const peer = new WsPeer(`ws://127.0.0.1:${port}/ws`, headers);
    await within(peer.opened, 3000, "the WebSocket to open");
    return peer;
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Sends one line. */
  send(line: string): void {
    this.socket.send(line);
  }

  /** Resolves with the next message, failing after `ms`. */
  async next(ms = 3000): Promise<string> {
    const deadline = performance.now() + ms;
    while (this.messages.length === 0) {
      const left = deadline - performance.now();
      if (left <= 0 || this.socket.readyState === WebSocket.CLOSED) {
        throw new Error(`No message within ${ms} ms (socket state ${this.socket.readyState})`);
      }
      await within(new Promise<void>((r) => this.#waiters.push(r)), left, "a message")
        .catch(() => {});
    }
    return this.messages.shift()!;
  }

  /** Resolves with how the socket closed, failing after `ms`. */
  async closedWithin(ms = 3000): Promise<{ code: number; reason: string }> {
    return await within(this.closed, ms, "the WebSocket to close");
  }

  /** Closes the socket and waits for the close to finish. */
  async close(): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/**
 * Sends a WebSocket upgrade request on a raw TCP connection and returns the
 * connection with the response head (status line and headers). Nothing more is read.
 */
export async function rawUpgrade(
  port: number,
  headers: Record<string, string> = {},
): Promise<{ conn: Deno.TcpConn; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    "GET /ws HTTP/1.1",
    ...(headers.Host ? [] : [`Host: 127.0.0.1:${port}`]),
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  await writeAll(conn, new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`));
  // Read byte by byte up to the end of the head, so no frame after it is consumed.
  let head = "";
  const one = new Uint8Array(1);
  while (!head.endsWith("\r\n\r\n")) {
    const n = await within(conn.read(one), 3000, "the upgrade response");
    if (n === null) break;
    head += String.fromCharCode(one[0]);
  }
  return { conn, head };
}

/** A client-to-server WebSocket text frame (masked, as RFC 6455 requires of clients). */
export function maskedTextFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const length = payload.length;
  const header = length < 126
    ? [0x81, 0x80 | length]
    : length < 65536
    ? [0x81, 0x80 | 126, length >> 8, length & 0xff]
    : [
      0x81,
      0x80 | 127,
      0,
      0,
      0,
      0,
      length >>> 24,
      (length >> 16) & 0xff,
      (length >> 8) & 0xff,
      length & 0xff,
    ];
  const frame = new Uint8Array(header.length + 4 + length);
  frame.set(header);
  frame.set(mask, header.length);
  for (let i = 0; i < length; i++) frame[header.length + 4 + i] = payload[i] ^ mask[i % 4];
  return frame;
}

/** An IM server and a web bridge to it, both on free ports. */
export interface Pair extends AsyncDisposable {
  im: ImServer;
  web: WebServer;
  imPort: number;
  webPort: number;
  /** The page's address, `http://127.0.0.1:PORT/`. */
  url: string;
}

/** Starts an IM server and a web bridge to it; disposing stops both. */
export function startPair(webOptions: WebServerOptions = {}): Pair {
  const im = serveIm({ port: 0, presenceIntervalMs: 0 });
  const web = serveWeb({
    port: 0,
    im: { hostname: "127.0.0.1", port: portOf(im.addr) },
    ...webOptions,
  });
  return {
    im,
    web,
    imPort: portOf(im.addr),
    webPort: portOf(web.addr),
    url: `http://127.0.0.1:${portOf(web.addr)}/`,
    async [Symbol.asyncDispose]() {
      await web.shutdown();
      await im.shutdown();
    },
  };
}

/** The Chromium the browser tests drive. */
export const CHROMIUM = Deno.env.get("CHROMIUM") ?? "/usr/bin/chromium";

/** True where Chromium is installed (the browser tests say so and are skipped where it is not). */
export function hasChromium(): boolean {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
}

/** A headless Chromium with a fresh profile; disposing closes it and removes the profile. */
export async function launchBrowser(): Promise<Browser & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "parley-chromium-" });
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    userDataDir: dir,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  return Object.assign(browser, {
    async [Symbol.asyncDispose]() {
      await browser.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  });
}
