/**
 * eurechat peer client (seed 000, SPEC.md 1.3): logs in to the directory,
 * listens on its own port (answering PING with PONG and showing incoming
 * `MESSAGE`s as `[sender] text`), binds that address in the directory, and
 * sends messages straight to other peers after looking them up.
 *
 * ```sh
 * deno run --allow-net clients/eurechat.ts --user alice --password secret
 * /who                 list who is online
 * /msg bob Hello!      send bob a message
 * /quit                LEAVE the directory and exit
 * ```
 *
 * @module
 */

import {
  encodeEurechat,
  EurechatDecoder,
  type EurechatMessage,
  payloadText,
} from "../protocols/eurechat.ts";
import { isFrameError } from "../protocols/errors.ts";
import { readFrames } from "../protocols/frames.ts";
import type { Connection } from "../net/connection.ts";
import { connectWithTimeout, isConnectionGone, type TlsDialOptions } from "../net/dial.ts";
import { type Server, serveStream, type TlsCertificate } from "../net/serve.ts";
import { writeAll } from "../net/bytes.ts";
import {
  type CommandSpec,
  millisecondsFromSeconds,
  portValue,
  runCommand,
  TLS_CLIENT_FLAGS,
  TLS_SERVER_FLAGS,
  tlsClientOptions,
  tlsServerFiles,
  UsageError,
} from "../cli/command.ts";
import { printError, readLines, type Screen, stdoutScreen } from "../cli/terminal.ts";
import { DIRECTORY_PORT } from "../protocols/eurechat.ts";

/** A directory entry: who, and where they listen. */
export interface PeerEntry {
  /** User name. */
  name: string;
  /** Address. */
  addr: string;
  /** Port. */
  port: number;
}

/** The directory answered with ERR (the session is over). */
export class DirectoryError extends Error {
  /** Makes the error from the ERR payload. */
  constructor(message: string) {
    super(message);
    this.name = "DirectoryError";
  }
}

/** A session with the directory server. Requests are answered in order. */
export class DirectoryClient {
  readonly #conn: Deno.Conn;
  readonly #messages: EurechatMessage[] = [];
  #waiters: (() => void)[] = [];
  #ended = false;
  #loop: Promise<void>;
  /** The request in progress; the next one waits for it. */
  #turn: Promise<unknown> = Promise.resolve();
  /** Resolves when the directory closes the session. */
  readonly closed: Promise<void>;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#loop = (async () => {
      try {
        for await (const message of readFrames(conn.readable, new EurechatDecoder())) {
          this.#messages.push(message);
          this.#wake();
        }
      } catch (error) {
        if (!(isConnectionGone(error) || isFrameError(error))) throw error; // closed, reset or cut mid-message: the session is over
      }
      this.#ended = true;
      this.#wake();
    })();
    this.closed = this.#loop;
  }

  /**
   * Connects to a directory server (with TLS when `tls` is given).
   *
   * @example
   * ```ts
   * import { serveDirectory } from "../servers/directory.ts";
   * import { DirectoryClient } from "./eurechat.ts";
   * await using directory = serveDirectory({ port: 0, db: ":memory:", hashCost: 4, livenessIntervalMs: 0 });
   * await using client = await DirectoryClient.connect("127.0.0.1", (directory.addr as Deno.NetAddr).port);
   * await client.login("alice", "secret");
   * console.assert((await client.query()).length === 0);
   * ```
   */
  static async connect(
    hostname: string,
    port: number,
    timeoutMs = 5000,
    tls?: TlsDialOptions,
  ): Promise<DirectoryClient> {
    return new DirectoryClient(await connectWithTimeout(hostname, port, timeoutMs, tls));
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The next message from the directory (ERR included); throws if the session ended. */
  async next(): Promise<EurechatMessage> {
    while (this.#messages.length === 0) {
      if (this.#ended) throw new DirectoryError("the directory closed the connection");
      await new Promise<void>((r) => this.#waiters.push(r));
    }
    return this.#messages.shift()!;
  }

  /**
   * Sends a message and returns its reply; an `ERR` reply throws {@link DirectoryError}.
   * Requests made at once (a keepalive and a command) run one after another, so
   * each gets its own reply.
   */
  request(type: string, args: string[] = [], payload = ""): Promise<EurechatMessage> {
    const result = this.#turn.then(async () => {
      await writeAll(this.#conn, encodeEurechat(type, args, payload));
      const reply = await this.next();
      if (reply.type === "ERR") throw new DirectoryError(payloadText(reply));
      return reply;
    });
    this.#turn = result.catch(() => {});
    return result;
  }

  /** USER then PASS. */
  async login(user: string, password: string): Promise<void> {
    await this.request("USER", [user]);
    await this.request("PASS", [password]);
  }

  /** Registers where this user can be reached. */
  async bind(addr: string, port: number): Promise<string> {
    return payloadText(await this.request("BIND", [addr, String(port)]));
  }

  /** Everyone bound (or just `name`). */
  async query(name?: string): Promise<PeerEntry[]> {
    const text = payloadText(await this.request("QUERY", name ? [name] : []));
    return text === "" ? [] : text.split("\n").map((line) => {
      const [n, addr, port] = line.split(",");
      return { name: n, addr, port: Number(port) };
    });
  }

  /** Deregisters this user. */
  async leave(): Promise<void> {
    await this.request("LEAVE");
  }

  /** Closes the session. */
  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch { /* closed */ }
    await this.#loop;
  }

  /** Same as {@link DirectoryClient.close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Connects to a directory server (the same as `DirectoryClient.connect`). */
export function connectDirectory(
  hostname: string,
  port = DIRECTORY_PORT,
  tls?: TlsDialOptions,
): Promise<DirectoryClient> {
  return DirectoryClient.connect(hostname, port, undefined, tls);
}

/** Options of {@link servePeer}. */
export interface PeerListenerOptions {
  /** Address to listen on (default 127.0.0.1). */
  hostname?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** Called for every incoming chat. */
  onMessage: (sender: string, text: string) => void;
  /** Speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
}

/**
 * Listens for other peers: answers `PING` with `PONG`, hands each `MESSAGE`
 * to `onMessage`. Anything else gets `ERR` and the connection is closed.
 */
export function servePeer(options: PeerListenerOptions): Server {
  return serveStream(
    { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 0, tls: options.tls },
    async (c: Connection) => {
      const decoder = new EurechatDecoder();
      for await (const chunk of c.chunks()) {
        let messages: EurechatMessage[];
        try {
          messages = decoder.decode(chunk);
        } catch (error) {
          if (!isFrameError(error)) throw error;
          c.send(encodeEurechat("ERR", [], error.message));
          return await c.end();
        }
        for (const m of messages) {
          if (m.type === "PING") c.send(encodeEurechat("PONG"));
          else if (m.type === "MESSAGE" && m.args.length === 1) {
            options.onMessage(
              m.args[0],
              payloadText(m),
            );
          } else {
            c.send(encodeEurechat("ERR", [], `I did not understand the message ${m.type}`));
            return await c.end();
          }
        }
      }
    },
  );
}

/** Sends one chat straight to a peer: `MESSAGE <len> <sender>\n<text>` (with TLS when `tls` is given). */
export async function sendPeerMessage(
  peer: PeerEntry,
  sender: string,
  text: string,
  timeoutMs = 5000,
  tls?: TlsDialOptions,
): Promise<void> {
  const conn = await connectWithTimeout(peer.addr, peer.port, timeoutMs, tls);
  try {
    await writeAll(conn, encodeEurechat("MESSAGE", [sender], text));
  } finally {
    conn.close();
  }
}

/** Options of {@link runEurechatSession}. */
export interface EurechatSessionOptions {
  /** This user's name. */
  user: string;
  /** The logged-in directory session. */
  directory: DirectoryClient;
  /** Typed lines. */
  lines: AsyncIterable<string>;
  /** Where output goes (default stdout). */
  screen?: Screen;
  /** How often to touch the directory so its idle timeout never fires, ms (default 10 s). */
  keepaliveMs?: number;
  /** Send to peers with TLS (`--tls`, `--ca`). */
  peerTls?: TlsDialOptions;
}

/** The help text of the interactive client. */
export const EURECHAT_HELP: string = [
  "/who               list who is online",
  "/msg NAME TEXT     send NAME a message",
  "/quit              leave the directory and exit",
  "/help              this list",
].join("\n");

/**
 * Runs the interactive commands until `/quit`, end of input, or the directory
 * closing the session. Resolves with why it stopped.
 */
export async function runEurechatSession(
  options: EurechatSessionOptions,
): Promise<"quit" | "eof" | "directory"> {
  const screen = options.screen ?? stdoutScreen;
  const { directory, user } = options;
  const keepalive = setInterval(
    () => void directory.query(user).catch(() => {}),
    options.keepaliveMs ?? 10_000,
  );
  const lost = directory.closed.then(() => "directory" as const);
  const typing = (async () => {
    for await (const line of options.lines) {
      const [command, ...rest] = line.trim().split(/\s+/);
      try {
        if (command === "" || command === undefined) continue;
        if (command === "/quit") {
          await directory.leave().catch(() => {});
          return "quit" as const;
        } else if (command === "/who") {
          const peers = await directory.query();
          screen.write(
            peers.length
              ? peers.map((p) => `${p.name} ${p.addr}:${p.port}\n`).join("")
              : "Nobody is online\n",
          );
        } else if (command === "/msg" && rest.length >= 2) {
          const [, name, text] = /^\/msg\s+(\S+)\s+(.*)$/.exec(line.trim())!;
          const [peer] = await directory.query(name);
          if (!peer) {
            screen.write(`${name} is not online\n`);
            continue;
          }
          try {
            await sendPeerMessage(peer, user, text, undefined, options.peerTls);
          } catch (error) {
            screen.write(
              `Cannot reach ${name} at ${peer.addr}:${peer.port}: ${
                error instanceof Error ? error.message : error
              }\n`,
            );
          }
        } else if (command === "/help") {
          screen.write(`${EURECHAT_HELP}\n`);
        } else {
          screen.write(
            `Unknown command. ${command === "/msg" ? "Usage: /msg NAME TEXT" : "Type /help"}\n`,
          );
        }
      } catch (error) {
        if (error instanceof DirectoryError) {
          screen.write(`Directory: ${error.message}\n`);
          return "directory" as const;
        }
        throw error;
      }
    }
    return "eof" as const;
  })();
  try {
    return await Promise.race([typing, lost]);
  } finally {
    clearInterval(keepalive);
  }
}

/** The command-line interface of `clients/eurechat.ts`. */
export const EURECHAT_CLIENT_COMMAND: CommandSpec = {
  name: "clients/eurechat.ts",
  usage:
    "--user NAME [--password PASS] [--directory-host HOST] [--directory-port PORT] [--port PORT]",
  summary:
    "eurechat peer: logs in to the directory, listens for peers, and messages them directly.",
  flags: {
    user: { type: "string", value: "NAME", description: "your user name" },
    password: {
      type: "string",
      value: "PASS",
      description: "your password (asked for when omitted)",
    },
    "directory-host": {
      type: "string",
      default: "127.0.0.1",
      value: "HOST",
      description: "directory server host",
    },
    "directory-port": {
      type: "string",
      default: String(DIRECTORY_PORT),
      value: "PORT",
      description: "directory server port",
    },
    host: {
      type: "string",
      default: "127.0.0.1",
      value: "HOST",
      description: "address to listen on for peers",
    },
    port: {
      type: "string",
      default: "0",
      value: "PORT",
      description: "port to listen on for peers (0: any)",
    },
    advertise: {
      type: "string",
      value: "ADDR",
      description: "address to BIND in the directory (default: --host)",
    },
    keepalive: {
      type: "string",
      default: "10",
      value: "SECONDS",
      description: "how often to touch the directory session",
    },
    tls: {
      ...TLS_CLIENT_FLAGS.tls,
      description: "reach the directory and other peers with TLS (plain TCP otherwise)",
    },
    ca: TLS_CLIENT_FLAGS.ca,
    "tls-cert": {
      ...TLS_SERVER_FLAGS["tls-cert"],
      description: "peers reach you with TLS only, with this PEM certificate chain",
    },
    "tls-key": TLS_SERVER_FLAGS["tls-key"],
    help: { type: "boolean", description: "show this help and exit" },
  },
};

/** Runs the peer client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, EURECHAT_CLIENT_COMMAND, async ({ values }) => {
    const user = values.user ? String(values.user) : "";
    if (!/^\S+$/.test(user)) throw new UsageError("--user NAME is required (no spaces)");
    const lines = readLines();
    let password: string;
    if (values.password === undefined) {
      stdoutScreen.write("Password: ");
      password = (await lines.next()).value ?? "";
    } else {
      password = String(values.password);
    }
    const host = String(values.host);
    const screen = stdoutScreen;
    const tls = tlsClientOptions(values);
    const listener = servePeer({
      tls: tlsServerFiles(values),
      hostname: host,
      port: portValue(values.port),
      onMessage: (sender, text) => screen.write(`[${sender}] ${text}\n`),
    });
    const dirHost = String(values["directory-host"]);
    const dirPort = portValue(values["directory-port"], "directory-port");
    let directory: DirectoryClient;
    try {
      directory = await connectDirectory(dirHost, dirPort, tls);
    } catch (error) {
      printError(
        `Unable to connect to the directory at ${dirHost}:${dirPort}: ${
          error instanceof Error ? error.message : error
        }`,
      );
      await listener.shutdown();
      Deno.exit(1);
    }
    const advertise = values.advertise
      ? String(values.advertise)
      : host === "0.0.0.0"
      ? "127.0.0.1"
      : host;
    const listenPort = (listener.addr as Deno.NetAddr).port;
    try {
      await directory.login(user, password);
      await directory.bind(advertise, listenPort);
    } catch (error) {
      printError(`Directory: ${error instanceof Error ? error.message : error}`);
      await directory.close();
      await listener.shutdown();
      Deno.exit(1);
    }
    screen.write(
      `Logged in as ${user}, reachable at ${advertise}:${listenPort}. Type /help for commands.\n`,
    );
    const result = await runEurechatSession({
      user,
      directory,
      lines,
      screen,
      keepaliveMs: millisecondsFromSeconds(values.keepalive, "keepalive"),
      peerTls: tls,
    });
    if (result === "directory") {
      printError(`The directory at ${dirHost}:${dirPort} closed the session`);
    }
    await directory.close();
    await listener.shutdown();
    Deno.exit(result === "directory" ? 1 : 0);
  });
}

if (import.meta.main) await main(Deno.args);
