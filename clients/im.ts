/**
 * Interactive IM client (seed 001, SPEC.md 2.4).
 *
 * ```sh
 * deno run --allow-net clients/im.ts --user alice
 * /invite bob carol      start a conversation (you join it at once)
 * /accept 3              join conversation 3 (after an invitation)
 * /say 3 hello           send to conversation 3
 * hello                  send to the current conversation (the last one you joined or spoke in)
 * /leave 3   /list   /who   /status away   /quit   /help
 * ```
 *
 * Every incoming message line shows its conversation and sender: `[3] bob: hi`.
 *
 * @module
 */

import {
  type ConversationId,
  encodeIm,
  IM_SERVER_COMMANDS,
  type ImClientMessage,
  ImLineDecoder,
  type ImMessage,
  ImMessageError,
  type ImServerMessage,
  parseImLine,
} from "../protocols/im.ts";
import { readFrames } from "../protocols/frames.ts";
import { isFrameError } from "../protocols/errors.ts";
import {
  type CommandSpec,
  portValue,
  runCommand,
  TLS_CLIENT_FLAGS,
  tlsClientOptions,
  tlsFailure,
  UsageError,
} from "../cli/command.ts";
import {
  connectWithTimeout,
  DEFAULT_CONNECT_TIMEOUT_MS,
  isConnectionGone,
  type TlsDialOptions,
} from "../net/dial.ts";
import { writeAll } from "../net/bytes.ts";
import { IM_PORT } from "../protocols/im.ts";
import { printError, readLines, type Screen, stdoutScreen } from "../cli/terminal.ts";

function isServerMessage(m: ImMessage): m is ImServerMessage {
  return (IM_SERVER_COMMANDS as readonly string[]).includes(m.command);
}

/** A connection to an IM server. */
export interface ImClient {
  /** Sends one message. */
  send(message: ImClientMessage): Promise<void>;
  /** Every message from the server until it closes; lines that do not parse are skipped. */
  messages(): AsyncGenerator<ImServerMessage>;
  /** Closes the connection. */
  close(): void;
  /** Same as {@link ImClient.close}, for `using`. */
  [Symbol.dispose](): void;
}

/**
 * Connects to an IM server (no REGISTER yet).
 *
 * @example
 * ```ts
 * import { serveIm } from "../servers/im.ts";
 * import { connectIm } from "./im.ts";
 * await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
 * using alice = await connectIm("127.0.0.1", (server.addr as Deno.NetAddr).port);
 * await alice.send({ command: "REGISTER", username: "alice", status: "online" });
 * const first = await alice.messages().next();
 * console.assert(first.value?.command === "ONLINE_USERS");
 * ```
 */
export async function connectIm(
  hostname: string,
  port = IM_PORT,
  tls?: TlsDialOptions,
): Promise<ImClient> {
  const conn = await connectWithTimeout(hostname, port, DEFAULT_CONNECT_TIMEOUT_MS, tls);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch { /* the stream closed it */ }
  };
  return {
    async send(message) {
      await writeAll(conn, encodeIm(message));
    },
    async *messages() {
      try {
        for await (const line of readFrames(conn.readable, new ImLineDecoder())) {
          try {
            const m = parseImLine(line);
            if (isServerMessage(m)) yield m;
          } catch (error) {
            if (!(error instanceof ImMessageError)) throw error; // a line this client cannot parse is skipped
          }
        }
      } catch (error) {
        if (!(isConnectionGone(error) || isFrameError(error))) throw error;
      }
    },
    close,
    [Symbol.dispose]: close,
  };
}

/** The help text of the interactive client. */
export const IM_HELP: string = [
  "/invite NAME [NAME...]   start a conversation with these users",
  "/accept ID               join conversation ID",
  "/say ID TEXT             send TEXT to conversation ID",
  "TEXT                     send to the current conversation",
  "/leave ID                leave conversation ID",
  "/list                    list ongoing conversations",
  "/who                     show who is online",
  "/status TEXT             set your status",
  "/quit                    say GOODBYE and exit",
].join("\n");

/** Options of {@link runImSession}. */
export interface ImSessionOptions {
  /** This user. */
  user: string;
  /** Initial status. */
  status?: string;
  /** Typed lines. */
  lines: AsyncIterable<string>;
  /** Where output goes (default stdout). */
  screen?: Screen;
}

function formatOnline(users: Record<string, string>): string {
  const names = Object.keys(users).sort();
  return `Online: ${names.map((n) => `${n} (${users[n]})`).join(", ") || "nobody"}`;
}

/**
 * Registers and runs the interactive session until `/quit`, end of input or
 * the server closing. Resolves with why it stopped.
 */
export async function runImSession(
  client: ImClient,
  options: ImSessionOptions,
): Promise<"quit" | "eof" | "closed"> {
  const screen = options.screen ?? stdoutScreen;
  const me = options.user;
  let online: Record<string, string> = {};
  let shown = "";
  let current: string | undefined;
  const joined = new Set<string>();
  await client.send({ command: "REGISTER", username: me, status: options.status ?? "online" });

  const incoming = (async () => {
    for await (const m of client.messages()) {
      switch (m.command) {
        case "ONLINE_USERS": {
          online = m.users;
          const text = formatOnline(online);
          if (text !== shown) screen.write(`${text}\n`);
          shown = text;
          break;
        }
        case "INVITATION": {
          const id = String(m.conversation);
          if (m.inviter === me) {
            // Our own conversation: join it at once and make it current.
            await client.send({ command: "JOIN", conversation: m.conversation });
            joined.add(id);
            current = id;
            screen.write(`[${id}] conversation started; you are in it\n`);
          } else {
            screen.write(`[${id}] ${m.inviter} invites you: /accept ${id}\n`);
          }
          break;
        }
        case "MESSAGE":
          screen.write(`[${m.conversation}] ${m.sender}: ${m.message}\n`);
          break;
        case "CONVERSATIONS": {
          const entries = Object.entries(m.conversations);
          screen.write(
            entries.length
              ? entries.map(([id, members]) => `[${id}] ${members.join(", ") || "(nobody yet)"}\n`)
                .join("")
              : "No conversations\n",
          );
          break;
        }
        case "ERROR":
          screen.write(`! ${m.text}\n`);
          break;
      }
    }
    return "closed" as const;
  })();

  const conversationArg = (text: string | undefined): ConversationId | undefined =>
    text && /^\d+$/.test(text) ? Number(text) : undefined;

  let quitting = false;
  const typing = (async () => {
    for await (const raw of options.lines) {
      const line = raw.trim();
      if (line === "") continue;
      const [command, ...rest] = line.split(/\s+/);
      const after = (n: number) => line.split(/\s+/).slice(n).join(" ");
      if (!command.startsWith("/")) {
        if (!current) {
          screen.write("! no current conversation: /invite someone or /accept an invitation\n");
        } else {await client.send({
            command: "SEND_MESSAGE",
            conversation: Number(current),
            message: line,
          });}
        continue;
      }
      const id = conversationArg(rest[0]);
      switch (command) {
        case "/invite":
          if (rest.length === 0) screen.write("! usage: /invite NAME [NAME...]\n");
          else await client.send({ command: "INVITE", users: rest });
          break;
        case "/accept":
          if (id === undefined) screen.write("! usage: /accept ID\n");
          else {
            await client.send({ command: "JOIN", conversation: id });
            joined.add(String(id));
            current = String(id);
          }
          break;
        case "/say":
          if (id === undefined || rest.length < 2) screen.write("! usage: /say ID TEXT\n");
          else {
            await client.send({ command: "SEND_MESSAGE", conversation: id, message: after(2) });
            current = String(id);
          }
          break;
        case "/leave":
          if (id === undefined) screen.write("! usage: /leave ID\n");
          else {
            await client.send({ command: "LEAVE", conversation: id });
            joined.delete(String(id));
            if (current === String(id)) current = [...joined].at(-1);
          }
          break;
        case "/list":
          await client.send({ command: "LIST_CONVERSATIONS" });
          break;
        case "/who":
          screen.write(`${formatOnline(online)}\n`);
          break;
        case "/status":
          if (rest.length === 0) screen.write("! usage: /status TEXT\n");
          else await client.send({ command: "STATUS", status: after(1) });
          break;
        case "/quit":
          quitting = true;
          await client.send({ command: "GOODBYE" });
          return "quit" as const;
        case "/help":
          screen.write(`${IM_HELP}\n`);
          break;
        default:
          screen.write(`! unknown command ${command}: type /help\n`);
      }
    }
    return "eof" as const;
  })().catch(() => "closed" as const);

  // After our GOODBYE the server closes the connection: that is a quit, not a disconnect.
  const result = await Promise.race([incoming.then((r) => quitting ? typing : r), typing]);
  client.close();
  await incoming;
  return result;
}

/** The command-line interface of `clients/im.ts`. */
export const IM_CLIENT_COMMAND: CommandSpec = {
  name: "clients/im.ts",
  usage: "--user NAME [--status TEXT] [--host HOST] [--port PORT]",
  summary: "IM client: see who is online, start conversations, chat in several at once.",
  flags: {
    user: { type: "string", value: "NAME", description: "your user name" },
    status: {
      type: "string",
      default: "online",
      value: "TEXT",
      description: "your initial status",
    },
    host: { type: "string", default: "127.0.0.1", value: "HOST", description: "server host" },
    port: { type: "string", default: String(IM_PORT), value: "PORT", description: "server port" },
    ...TLS_CLIENT_FLAGS,
    help: { type: "boolean", description: "show this help and exit" },
  },
  epilog: IM_HELP,
};

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, IM_CLIENT_COMMAND, async ({ values }) => {
    const user = values.user ? String(values.user) : "";
    if (!/^\S+$/.test(user)) throw new UsageError("--user NAME is required (no spaces)");
    const host = String(values.host);
    const port = portValue(values.port);
    const tls = tlsClientOptions(values);
    let client: ImClient;
    try {
      client = await connectIm(host, port, tls);
    } catch (error) {
      printError(`Unable to connect to ${host}:${port}${tlsFailure(error)}`);
      Deno.exit(1);
    }
    const result = await runImSession(client, {
      user,
      status: String(values.status),
      lines: readLines(),
    });
    if (result === "closed") printError(`Server at ${host}:${port} has disconnected`);
    Deno.exit(result === "closed" ? 1 : 0);
  });
}

if (import.meta.main) await main(Deno.args);
