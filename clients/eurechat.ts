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
  DIRECTORY_PORT,
  DIRECTORY_TEXTS,
  encodeEurechat,
  EurechatDecoder,
  type EurechatMessage,
  payloadText,
} from "../protocols/eurechat.ts";
import { isFrameError } from "../protocols/errors.ts";
import { Connection } from "../net/connection.ts";
import { connectWithTimeout, isConnectionGone, type TlsDialOptions } from "../net/dial.ts";
import { receiveFrames } from "../net/framing.ts";
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
import { ClientConsole, consoleFlags, withClientFlags } from "../cli/console.ts";
import { tone } from "../cli/render.ts";
import { exitAfter, runSession, type SessionEnd } from "../cli/session.ts";
import { printError } from "../cli/terminal.ts";

/** The largest payload the client accepts from the directory (a RESULT at its caps, SPEC.md 6.4). */
export const EURECHAT_CLIENT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** A directory entry: who, and where they listen. */
export interface PeerEntry {
  /** User name. */
  name: string;
  /** Address. */
  addr: string;
  /** Port. */
  port: number;
}

/**
 * One `name,addr,port` line of a RESULT, read from the right: the last two
 * fields are the address and port, so a name with a comma in it (which a
 * hostile or old directory might let through) cannot fake an entry.
 */
export function parseEntry(line: string): PeerEntry {
  const fields = line.split(",");
  const port = Number(fields.pop());
  const addr = fields.pop() ?? "";
  return { name: fields.join(","), addr, port };
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
  /** Set when the directory sent bytes that do not frame (the session is then over). */
  frameError?: Error;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
    const decoder = new EurechatDecoder({ maxPayloadBytes: EURECHAT_CLIENT_MAX_PAYLOAD_BYTES });
    this.#loop = (async () => {
      try {
        for await (const message of receiveFrames(new Connection(conn), decoder)) {
          if (message.type === "ERR") this.lastError = payloadText(message);
          this.#messages.push(message);
          this.#wake();
        }
      } catch (error) {
        if (!isFrameError(error)) throw error;
        this.frameError = error;
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

  /** The text of the last `ERR` the directory sent (a directory ends the session after one). */
  lastError?: string;

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
    return text === "" ? [] : text.split("\n").map(parseEntry);
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
      for await (const m of receiveFrames(c, new EurechatDecoder())) {
        if (m.type === "PING") c.send(encodeEurechat("PONG"));
        else if (m.type === "MESSAGE" && m.args.length === 1) {
          options.onMessage(m.args[0], payloadText(m));
        } else {
          c.send(encodeEurechat("ERR", [], DIRECTORY_TEXTS.notUnderstood(m.type)));
          return;
        }
      }
    },
    { onFrameError: (error) => encodeEurechat("ERR", [], error.message) },
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
  /** Where typed lines come from and messages go. */
  console: ClientConsole;
  /** How often to touch the directory so its idle timeout never fires, ms (default 10 s). */
  keepaliveMs?: number;
  /** Send to peers with TLS (`--tls`, `--ca`). */
  peerTls?: TlsDialOptions;
}

/** The help text of the interactive client. */
export const EURECHAT_HELP: string = [
  "/who               list who is online",
  "/msg NAME TEXT     send NAME a message",
  "/quit              leave the directory and exit (Ctrl+D and Ctrl+C do too)",
  "/help              this list",
].join("\n");

/** A presence notice for every name that came or went between two directory lists. */
export function directoryNotices(before: readonly string[], after: readonly string[]): string[] {
  return [
    ...after.filter((n) => !before.includes(n)).map((n) => `${n} is online`),
    ...before.filter((n) => !after.includes(n)).map((n) => `${n} went offline`),
  ];
}

async function eurechatCommand(options: EurechatSessionOptions, line: string): Promise<void> {
  const { directory, user, console: out } = options;
  const [command, ...rest] = line.split(/\s+/);
  if (command === "/who") {
    const peers = await directory.query();
    if (peers.length === 0) return out.print("Nobody is online");
    return out.printLines(peers.map((p) => [tone.name(p.name), ` ${p.addr}:${p.port}`]));
  }
  if (command === "/help") return out.printLines(EURECHAT_HELP.split("\n"));
  if (command !== "/msg") {
    return out.print([tone.error(`Unknown command ${command}: type /help for the commands`)]);
  }
  if (rest.length < 2) return out.print([tone.error("Usage: /msg NAME TEXT")]);
  const [, name, text] = /^\/msg\s+(\S+)\s+(.*)$/.exec(line)!;
  const [peer] = await directory.query(name);
  if (!peer) return out.print([tone.error(`${name} is not online`)]);
  try {
    await sendPeerMessage(peer, user, text, undefined, options.peerTls);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return out.print([tone.error(`Cannot reach ${name} at ${peer.addr}:${peer.port}: ${why}`)]);
  }
  if (out.interactive) out.print([tone.own(`-> ${name}: ${text}`)], { received: true });
}

/** A keepalive that also shows (interactive mode) who came and went. */
function keepalive(options: EurechatSessionOptions): () => void {
  const { directory, console: out } = options;
  let known: string[] | undefined;
  const touch = async () => {
    try {
      const names = (await directory.query()).map((p) => p.name);
      if (known && out.interactive) {
        for (const n of directoryNotices(known, names)) {
          out.print([tone.notice(n)], { received: true });
        }
      }
      known = names;
    } catch (error) {
      // The session ended: the runner hears it from `directory.closed`.
      if (!(error instanceof DirectoryError || isConnectionGone(error))) throw error;
    }
  };
  void touch();
  const timer = setInterval(touch, options.keepaliveMs ?? 10_000);
  return () => clearInterval(timer);
}

/**
 * Runs the interactive commands until `/quit` or end of input (both LEAVE the
 * directory) or the directory closing the session.
 */
export async function runEurechatSession(options: EurechatSessionOptions): Promise<SessionEnd> {
  const { directory, console: out } = options;
  const stop = keepalive(options);
  try {
    return await runSession({
      async read() {
        await directory.closed;
        if (directory.frameError) throw directory.frameError;
      },
      async type(quitting) {
        try {
          for await (const raw of out.lines()) {
            const line = raw.trim();
            if (line === "/quit") break;
            if (line !== "") await eurechatCommand(options, line);
          }
          quitting();
          await directory.leave();
        } catch (error) {
          if (!(error instanceof DirectoryError)) throw error;
          // The directory ends a session after ERR, so do we; the exit line says why.
          await directory.close();
          await new Promise(() => {}); // the reader reports the end
        }
      },
      close: () => directory.close(),
    });
  } finally {
    stop();
  }
}

/** The command-line interface of `clients/eurechat.ts`. */
export const EURECHAT_CLIENT_COMMAND: CommandSpec = withClientFlags({
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
});

async function login(
  directory: DirectoryClient,
  user: string,
  password: string,
  where: { addr: string; port: number },
): Promise<string | undefined> {
  try {
    await directory.login(user, password);
    await directory.bind(where.addr, where.port);
    return undefined;
  } catch (error) {
    if (error instanceof DirectoryError) return error.message;
    if (isConnectionGone(error)) return "the directory closed the connection";
    throw error;
  }
}

/** Runs the peer client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, EURECHAT_CLIENT_COMMAND, async ({ values }) => {
    const user = values.user ? String(values.user) : "";
    if (!/^\S+$/.test(user)) throw new UsageError("--user NAME is required (no spaces)");
    const host = String(values.host);
    const listenPort = portValue(values.port);
    const dirHost = String(values["directory-host"]);
    const dirPort = portValue(values["directory-port"], "directory-port");
    const keepaliveMs = millisecondsFromSeconds(values.keepalive, "keepalive");
    const tls = tlsClientOptions(values);
    const peerCertificate = tlsServerFiles(values);
    const out = new ClientConsole({ ...consoleFlags(values) });
    const password = values.password === undefined
      ? await out.ask("Password: ", { hidden: true })
      : String(values.password);
    if (password === undefined) {
      out.finish();
      Deno.exit(0);
    }
    const listener = servePeer({
      tls: peerCertificate,
      hostname: host,
      port: listenPort,
      onMessage: (sender, text) => {
        out.print(["[", tone.name(sender), `] ${text}`], { received: true });
      },
    });
    const quit = async (code: number, line?: string) => {
      out.finish();
      if (line) printError(line);
      await listener.shutdown();
      Deno.exit(code);
    };
    let directory: DirectoryClient;
    try {
      directory = await connectDirectory(dirHost, dirPort, tls);
    } catch (error) {
      const why = error instanceof Error ? error.message : error;
      return await quit(1, `Unable to connect to the directory at ${dirHost}:${dirPort}: ${why}`);
    }
    const advertise = values.advertise
      ? String(values.advertise)
      : host === "0.0.0.0"
      ? "127.0.0.1"
      : host;
    const port = (listener.addr as Deno.NetAddr).port;
    const refused = await login(directory, user, password, { addr: advertise, port });
    if (refused !== undefined) {
      await directory.close();
      return await quit(1, `Directory: ${refused}`);
    }
    out.print(`Logged in as ${user}, reachable at ${advertise}:${port}. Type /help for commands.`);
    const end = await runEurechatSession({
      user,
      directory,
      console: out,
      keepaliveMs,
      peerTls: tls,
    });
    await listener.shutdown();
    const why = directory.lastError;
    exitAfter(
      out,
      end,
      `The directory at ${dirHost}:${dirPort} closed the session${why ? `: ${why}` : ""}`,
    );
  });
}

if (import.meta.main) await main(Deno.args);
