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
import { readFrames } from "../protocols/frames.ts";
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
import { CRC_PORT, randomCrcId } from "../protocols/crc.ts";
import {
  connectWithTimeout,
  DEFAULT_CONNECT_TIMEOUT_MS,
  isConnectionGone,
  type TlsDialOptions,
} from "../net/dial.ts";
import { writeAll } from "../net/bytes.ts";
import { printError, readLines, type Screen, stdoutScreen } from "../cli/terminal.ts";

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
  readonly #conn: Deno.Conn;
  #done = false;

  private constructor(conn: Deno.Conn, options: CrcClientOptions, id: number) {
    this.#conn = conn;
    this.id = id;
    this.username = options.username;
    this.closed = (async () => {
      try {
        for await (const m of readFrames(conn.readable, new CrcDecoder())) {
          options.onMessage?.(m, this);
          this.#apply(m);
        }
      } catch (error) {
        if (!(isFrameError(error) || isConnectionGone(error))) throw error;
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

/** Formats an incoming message for the screen, or nothing for messages a person need not see. */
export function describeCrcMessage(m: CrcMessage, client: CrcClient): string | undefined {
  switch (m.kind) {
    case "chat":
      return `[${client.nameOf(m.source)}] ${m.content}`;
    case "status":
      return `* ${m.content}`;
    case "client_registration":
      return m.source === client.id ? undefined : `* ${m.name} (${m.source}) is online`;
    case "client_quit":
      return `* ${client.nameOf(m.source)} left${m.content ? `: ${m.content}` : ""}`;
    default:
      return undefined;
  }
}

/** Runs the interactive commands until `/quit`, end of input, or the node closing. */
export async function runCrcSession(
  client: CrcClient,
  lines: AsyncIterable<string>,
  screen: Screen = stdoutScreen,
): Promise<"quit" | "eof" | "closed"> {
  let quitting = false;
  const typing = (async () => {
    for await (const raw of lines) {
      const line = raw.trim();
      if (line === "") continue;
      const [word, ...rest] = line.split(/\s+/);
      const command = word.toLowerCase();
      if (command === "/msg" || command === "message") {
        if (rest.length < 2) {
          screen.write("! usage: /msg NAME-or-ID TEXT\n");
          continue;
        }
        const destination = client.resolve(rest[0]);
        if (destination === undefined) {
          screen.write(`! no user named ${rest[0]}\n`);
          continue;
        }
        await client.chat(
          destination,
          line.slice(line.indexOf(rest[0], word.length) + rest[0].length + 1),
        );
      } else if (command === "/who") {
        const users = [...client.users.values()];
        screen.write(
          users.length
            ? users.map((u) => `${u.name} (${u.id})\n`).join("")
            : "Nobody else is connected\n",
        );
      } else if (command === "/quit" || command === "quit") {
        quitting = true;
        await client.quit(rest.join(" "));
        return "quit" as const;
      } else if (command === "/help") {
        screen.write(
          "/msg NAME-or-ID TEXT   send a chat\n/who                   list connected users\n/quit [TEXT]           leave\n",
        );
      } else {
        screen.write("! unknown command: type /help\n");
      }
    }
    return "eof" as const;
  })().catch(() => "closed" as const);
  // Our own /quit closes the connection too: that is a quit, not the node going away.
  const result = await Promise.race([
    typing,
    client.closed.then(() => quitting ? typing : "closed" as const),
  ]);
  client.close();
  return result;
}

/** The command-line interface of `clients/crc.ts`. */
export const CRC_CLIENT_COMMAND: CommandSpec = {
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
};

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, CRC_CLIENT_COMMAND, async ({ values }) => {
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
    const hostname = String(values.serverhost);
    const port = portValue(values.serverport, "serverport");
    const screen = stdoutScreen;
    const tls = tlsClientOptions(values);
    let client: CrcClient;
    try {
      client = await CrcClient.connect({
        id,
        hostname,
        port,
        username: String(values.username),
        info: String(values.info),
        tls,
        onMessage: (m, c) => {
          const text = describeCrcMessage(m, c);
          if (text !== undefined) screen.write(`${text}\n`);
        },
      });
    } catch (error) {
      printError(`Unable to connect to ${hostname}:${port}${tlsFailure(error)}`);
      Deno.exit(1);
    }
    const result = await runCrcSession(client, readLines(), screen);
    if (result === "closed") printError(`Server at ${hostname}:${port} has disconnected`);
    Deno.exit(result === "closed" ? 1 : 0);
  });
}

if (import.meta.main) await main(Deno.args);
