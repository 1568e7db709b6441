/**
 * Clemson Relay Chat client (seed 003, SPEC.md 3.3): registers with a node,
 * tracks the set of connected users, keeps a status log and a chat log, and
 * sends chats by user name or id.
 *
 * ```sh
 * deno run --allow-net clients/crc.ts --id 100 --serverhost 127.0.0.1 --serverport 3600 --username alice
 * /msg bob hello         (or: MESSAGE bob hello; an id works as well as a name)
 * /who
 * /quit [text]           (or: QUIT [text])
 * ```
 *
 * @module
 */

import { CrcDecoder, type CrcMessage, encodeCrc } from "../protocols/crc.ts";
import { isFrameError } from "../protocols/errors.ts";
import {
  type CommandSpec,
  intValue,
  portValue,
  runCommand,
  TLS_CLIENT_FLAGS,
  tlsClientOptions,
  tlsFailure,
  UsageError,
} from "../cli/command.ts";
import { Connection } from "../net/connection.ts";
import {
  connectWithTimeout,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type TlsDialOptions,
} from "../net/dial.ts";
import { receiveFrames } from "../net/framing.ts";
import { CRC_PORT, CRC_STATUS, randomCrcId } from "../protocols/crc.ts";
import { ClientConsole, consoleFlags, withClientFlags } from "../cli/console.ts";
import { type Line, tone } from "../cli/render.ts";
import { exitAfter, runSession, type SessionEnd } from "../cli/session.ts";
import { printError } from "../cli/terminal.ts";
import { writeAll } from "../net/bytes.ts";

/** A user the client knows is connected. */
export interface CrcUser {
  /** Id. */
  id: number;
  /** Name. */
  name: string;
  /** Info. */
  info: string;
}

/** One received chat. */
export interface CrcChat {
  /** Sender id. */
  source: number;
  /** Sender name (or `#<id>` when unknown). */
  sender: string;
  /** The text. */
  text: string;
}

/** One received status. */
export interface CrcStatus {
  /** Who sent it. */
  source: number;
  /** Status code (0 welcome, 1 unknown id, 2 duplicate id). */
  code: number;
  /** The text. */
  text: string;
}

/** Options of {@link connectCrc}. */
export interface CrcClientOptions {
  /** This client's id (default random). */
  id?: number;
  /** Node host (default 127.0.0.1). */
  hostname?: string;
  /** Node port (default 3600). */
  port?: number;
  /** User name. */
  username: string;
  /** Info text. */
  info?: string;
  /** Connect with TLS (`--tls`, `--ca`). */
  tls?: TlsDialOptions;
  /** Called for every message, before the client's state is updated by it (a quit can still name its user). */
  onMessage?: (message: CrcMessage, client: CrcClient) => void;
}

/** A client connected to a CRC node. */
export class CrcClient {
  /** This client's id. */
  readonly id: number;
  /** This client's name. */
  readonly username: string;
  /** Connected users other than this one, by id, in the order learned. */
  readonly users: Map<number, CrcUser> = new Map();
  /** Statuses received, oldest first. */
  readonly statusLog: CrcStatus[] = [];
  /** Chats received, oldest first. */
  readonly chatLog: CrcChat[] = [];
  /** Resolves when the node closes the connection (or this side does). */
  readonly closed: Promise<void>;
  /** Set when the node sent bytes that do not frame (the connection was then closed). */
  frameError?: Error;
  readonly #conn: Deno.Conn;
  #done = false;

  private constructor(conn: Deno.Conn, options: CrcClientOptions, id: number) {
    this.#conn = conn;
    this.id = id;
    this.username = options.username;
    this.closed = (async () => {
      try {
        for await (const m of receiveFrames(new Connection(conn), new CrcDecoder())) {
          options.onMessage?.(m, this);
          this.#apply(m);
        }
      } catch (error) {
        if (!isFrameError(error)) throw error;
        this.frameError = error;
      } finally {
        this.close();
      }
    })();
  }

  /**
   * Connects and registers (last_hop 0).
   *
   * @example
   * ```ts
   * import { serveCrcNode } from "../servers/crc_node.ts";
   * import { CrcClient } from "./crc.ts";
   * await using node = await serveCrcNode({ id: 1, port: 0 });
   * await using alice = await CrcClient.connect({ id: 10, username: "alice", port: (node.addr as Deno.NetAddr).port });
   * console.assert(alice.id === 10);
   * ```
   */
  static async connect(options: CrcClientOptions): Promise<CrcClient> {
    const id = options.id ?? randomCrcId();
    // Encoded first: a name or info that does not fit its field fails before any socket is opened.
    const registration = encodeCrc({
      kind: "client_registration",
      source: id,
      lastHop: 0,
      name: options.username,
      info: options.info ?? "",
    });
    const conn = await connectWithTimeout(
      options.hostname ?? "127.0.0.1",
      options.port ?? CRC_PORT,
      DEFAULT_CONNECT_TIMEOUT_MS,
      options.tls,
    );
    const client = new CrcClient(conn, options, id);
    await client.#write(registration);
    return client;
  }

  #apply(m: CrcMessage) {
    switch (m.kind) {
      case "client_registration":
        if (m.source !== this.id) {
          this.users.set(m.source, { id: m.source, name: m.name, info: m.info });
        }
        break;
      case "client_quit":
        this.users.delete(m.source);
        break;
      case "status":
        this.statusLog.push({ source: m.source, code: m.code, text: m.content });
        break;
      case "chat":
        this.chatLog.push({
          source: m.source,
          sender: this.nameOf(m.source),
          text: m.content,
        });
        break;
    }
  }

  #write(bytes: Uint8Array): Promise<void> {
    return writeAll(this.#conn, bytes);
  }

  /** The name of a user id: a connected user's name, this client's own, or `#<id>`. */
  nameOf(id: number): string {
    return id === this.id ? this.username : this.users.get(id)?.name ?? `#${id}`;
  }

  /** The id of a user given by id or by name (first match), if known. */
  resolve(target: string | number): number | undefined {
    if (typeof target === "number") return target;
    if (/^\d+$/.test(target)) return Number(target);
    for (const user of this.users.values()) if (user.name === target) return user.id;
    return undefined;
  }

  /** Sends a chat to a user id. */
  async chat(destination: number, text: string): Promise<void> {
    await this.#write(encodeCrc({ kind: "chat", source: this.id, destination, content: text }));
  }

  /** Sends a client quit, then closes. */
  async quit(text = ""): Promise<void> {
    try {
      await this.#write(encodeCrc({ kind: "client_quit", source: this.id, content: text }));
    } finally {
      this.close();
      await this.closed;
    }
  }

  /** Closes the connection. */
  close(): void {
    if (this.#done) return;
    this.#done = true;
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }

  /** Closes and waits for the reader, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }
}

/** Connects a CRC client (the same as `CrcClient.connect`). */
export function connectCrc(options: CrcClientOptions): Promise<CrcClient> {
  return CrcClient.connect(options);
}

/** How an incoming message looks on screen, or nothing for messages a person need not see. */
export function describeCrcMessage(m: CrcMessage, client: CrcClient): Line | undefined {
  switch (m.kind) {
    case "chat":
      return ["[", tone.name(client.nameOf(m.source)), `] ${m.content}`];
    case "status":
      return m.code === CRC_STATUS.welcome
        ? [tone.notice(`* ${m.content}`)]
        : [tone.error(`* ${m.content}`)];
    case "client_registration":
      return m.source === client.id
        ? undefined
        : [tone.notice(`* ${m.name} (${m.source}) is online`)];
    case "client_quit":
      return [tone.notice(`* ${client.nameOf(m.source)} left${m.content ? `: ${m.content}` : ""}`)];
    default:
      return undefined;
  }
}

/** The help text of the CRC client. */
export const CRC_HELP: readonly string[] = [
  "/msg NAME-or-ID TEXT   send a chat (also: MESSAGE NAME-or-ID TEXT)",
  "/who                   list connected users",
  "/quit [TEXT]           leave (also: QUIT [TEXT]; Ctrl+D and Ctrl+C leave too)",
  "/help                  this list",
];

async function crcCommand(client: CrcClient, out: ClientConsole, line: string): Promise<void> {
  const [word, ...rest] = line.split(/\s+/);
  const command = word.toLowerCase();
  if (command === "/msg" || command === "message") {
    if (rest.length < 2) return out.print([tone.error("! usage: /msg NAME-or-ID TEXT")]);
    const destination = client.resolve(rest[0]);
    if (destination === undefined) return out.print([tone.error(`! no user named ${rest[0]}`)]);
    const text = line.slice(line.indexOf(rest[0], word.length) + rest[0].length + 1);
    await client.chat(destination, text);
    if (out.interactive) {
      out.print([tone.own(`-> ${client.nameOf(destination)}: ${text}`)], { received: true });
    }
  } else if (command === "/who") {
    const users = [...client.users.values()];
    if (users.length === 0) out.print("Nobody else is connected");
    else out.printLines(users.map((u) => [tone.name(u.name), ` (${u.id})`]));
  } else if (command === "/help") {
    out.printLines(CRC_HELP);
  } else {
    out.print([tone.error(`! unknown command ${word}: type /help`)]);
  }
}

/** Runs the interactive commands until `/quit`, end of input (both send a quit), or the node closing. */
export function runCrcSession(client: CrcClient, out: ClientConsole): Promise<SessionEnd> {
  return runSession({
    async read() {
      await client.closed;
      if (client.frameError) throw client.frameError;
    },
    async type(quitting) {
      for await (const raw of out.lines()) {
        const line = raw.trim();
        if (line === "") continue;
        const [word, ...rest] = line.split(/\s+/);
        if (word.toLowerCase() === "/quit" || word.toLowerCase() === "quit") {
          quitting();
          return await client.quit(rest.join(" "));
        }
        await crcCommand(client, out, line);
      }
      quitting();
      await client.quit();
    },
    close: () => client.close(),
  });
}

/** The command-line interface of `clients/crc.ts`. */
export const CRC_CLIENT_COMMAND: CommandSpec = withClientFlags({
  name: "clients/crc.ts",
  usage: "--username NAME [--id ID] [--serverhost HOST] [--serverport PORT] [--info TEXT]",
  summary: "Clemson Relay Chat client: chat with anyone on the network by name or id.",
  flags: {
    id: { type: "string", value: "ID", description: "32-bit id (default: random)" },
    serverhost: { type: "string", default: "127.0.0.1", value: "HOST", description: "node host" },
    serverport: {
      type: "string",
      default: String(CRC_PORT),
      value: "PORT",
      description: "node port",
    },
    username: { type: "string", value: "NAME", description: "your name" },
    info: { type: "string", default: "", value: "TEXT", description: "information about you" },
    ...TLS_CLIENT_FLAGS,
    help: { type: "boolean", description: "show this help and exit" },
  },
});

function crcFlags(values: Record<string, string | boolean | undefined>) {
  if (values.username === undefined || String(values.username) === "") {
    throw new UsageError("--username NAME is required");
  }
  const bytes = (text: unknown) => new TextEncoder().encode(String(text)).length;
  if (bytes(values.username) > 255) throw new UsageError("--username is at most 255 bytes");
  if (bytes(values.info) > 65535) throw new UsageError("--info is at most 65535 bytes");
  let id: number | undefined;
  if (values.id !== undefined) {
    id = intValue(values.id, "id", 1);
    if (id > 0xffffffff) throw new UsageError(`--id must fit in 32 bits, got '${values.id}'`);
  }
  return {
    id,
    hostname: String(values.serverhost),
    port: portValue(values.serverport, "serverport"),
    username: String(values.username),
    info: String(values.info),
    tls: tlsClientOptions(values),
  };
}

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, CRC_CLIENT_COMMAND, async ({ values }) => {
    const options = crcFlags(values);
    const out = new ClientConsole({ ...consoleFlags(values) });
    let refusal: string | undefined;
    let welcomed = false;
    let client: CrcClient;
    try {
      client = await CrcClient.connect({
        ...options,
        onMessage: (m, c) => {
          if (m.kind === "status" && m.code === CRC_STATUS.welcome) welcomed = true;
          const duplicate = m.kind === "status" && m.code === CRC_STATUS.duplicateId;
          if (duplicate && !welcomed) {
            refusal ??= m.content; // our id is taken: the node keeps the link but we are nobody
            c.close();
            return;
          }
          const line = describeCrcMessage(m, c);
          if (line !== undefined) out.print(line, { received: true });
        },
      });
    } catch (error) {
      printError(`Unable to connect to ${options.hostname}:${options.port}${tlsFailure(error)}`);
      Deno.exit(1);
    }
    const end = await runCrcSession(client, out);
    if (refusal !== undefined) {
      out.finish();
      printError(`${refusal}; use another --id, or none for a random one`);
      Deno.exit(1);
    }
    exitAfter(out, end, `Server at ${options.hostname}:${options.port} has disconnected`);
  });
}

if (import.meta.main) await main(Deno.args);
