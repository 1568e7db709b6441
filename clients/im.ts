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
import {
  type CommandSpec,
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
import { ClientConsole, consoleFlags, withClientFlags } from "../cli/console.ts";
import { type Line, tone } from "../cli/render.ts";
import { exitAfter, runSession, type SessionEnd, sessionEndOf } from "../cli/session.ts";
import { printError } from "../cli/terminal.ts";
import { writeAll } from "../net/bytes.ts";
import { IM_PORT } from "../protocols/im.ts";

/** The longest line the client accepts (what a server may send at its caps, SPEC.md 6.4). */
export const IM_CLIENT_MAX_LINE_BYTES = 1024 * 1024;

function isServerMessage(m: ImMessage): m is ImServerMessage {
  return (IM_SERVER_COMMANDS as readonly string[]).includes(m.command);
}

/** A connection to an IM server. */
export interface ImClient {
  /** Sends one message. */
  send(message: ImClientMessage): Promise<void>;
  /**
   * Every message from the server until it closes; lines that do not parse are
   * skipped, a reset or a line over {@link IM_CLIENT_MAX_LINE_BYTES} throws.
   */
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
      const decoder = new ImLineDecoder({ maxLineBytes: IM_CLIENT_MAX_LINE_BYTES });
      for await (const line of receiveFrames(new Connection(conn), decoder)) {
        let m: ImMessage;
        try {
          m = parseImLine(line);
        } catch (error) {
          if (error instanceof ImMessageError) continue; // a line this client cannot parse is skipped
          throw error;
        }
        if (isServerMessage(m)) yield m;
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
  "TEXT                     send to the current conversation (shown in the prompt)",
  "/leave ID                leave conversation ID",
  "/list                    list ongoing conversations",
  "/who                     show who is online",
  "/status TEXT             set your status",
  "/quit                    say GOODBYE and exit (Ctrl+D and Ctrl+C do too)",
  "/help                    this list",
].join("\n");

/** Options of {@link runImSession}. */
export interface ImSessionOptions {
  /** This user (already registered, see {@link registerIm}). */
  user: string;
  /** Where typed lines come from and messages go. */
  console: ClientConsole;
  /** The server's messages after registration (default `client.messages()`). */
  messages?: AsyncIterator<ImServerMessage>;
  /** The online list at registration. */
  online?: Record<string, string>;
}

function formatOnline(users: Record<string, string>): string {
  const names = Object.keys(users).sort();
  return `Online: ${names.map((n) => `${n} (${users[n]})`).join(", ") || "nobody"}`;
}

/** Presence changes between two online lists, as notices. */
export function presenceNotices(
  before: Record<string, string>,
  after: Record<string, string>,
): string[] {
  const notices: string[] = [];
  for (const [name, status] of Object.entries(after)) {
    if (!Object.hasOwn(before, name)) notices.push(`${name} is online (${status})`);
    else if (before[name] !== status) notices.push(`${name} is now ${status}`);
  }
  for (const name of Object.keys(before)) {
    if (!Object.hasOwn(after, name)) notices.push(`${name} went offline`);
  }
  return notices;
}

/**
 * Sends REGISTER and waits for the answer. A name that is refused (taken,
 * say) is asked for again in interactive mode; in plain mode the answer is
 * the refusal. Resolves with the registered name and the first online list,
 * the reason it failed, or `quit` when the user left instead of answering.
 */
export async function registerIm(
  client: ImClient,
  messages: AsyncIterator<ImServerMessage>,
  options: { user: string; status: string; console: ClientConsole },
): Promise<
  { user: string; online: Record<string, string> } | { refused: string } | { quit: true }
> {
  let user = options.user;
  const out = options.console;
  while (true) {
    await client.send({ command: "REGISTER", username: user, status: options.status });
    let reply: ImServerMessage | undefined;
    do {
      const next = await messages.next();
      if (next.done) return { refused: "the server closed the connection" };
      reply = next.value;
    } while (reply.command !== "ONLINE_USERS" && reply.command !== "ERROR");
    if (reply.command === "ONLINE_USERS") return { user, online: reply.users };
    const refusal = reply.text;
    if (!out.interactive) return { refused: refusal };
    out.print([tone.error(`! ${refusal}`)], { received: true });
    const again = await out.ask("Choose another name: ");
    if (again === undefined) return { quit: true }; // Ctrl+C or Ctrl+D: the user leaves
    if (again.trim() === "") return { refused: refusal };
    user = again.trim();
  }
}

/** The interactive state of one IM session: who is online, which conversations, the prompt. */
class ImView {
  online: Record<string, string>;
  current: string | undefined;
  readonly joined = new Set<string>();
  readonly me: string;
  readonly out: ClientConsole;
  readonly client: ImClient;

  constructor(client: ImClient, options: ImSessionOptions) {
    this.client = client;
    this.me = options.user;
    this.out = options.console;
    this.online = options.online ?? {};
  }

  setCurrent(id: string | undefined): void {
    this.current = id;
    this.out.setPrompt(id === undefined ? "> " : `[${id}]> `);
  }

  notice(text: string): void {
    this.out.print([tone.notice(text)], { received: true });
  }

  error(text: string): void {
    this.out.print([tone.error(`! ${text}`)], { received: true });
  }

  onlineUsers(users: Record<string, string>): void {
    if (this.out.interactive) {
      for (const notice of presenceNotices(this.online, users)) this.notice(notice);
    } else if (formatOnline(users) !== formatOnline(this.online)) {
      this.out.print(formatOnline(users));
    }
    this.online = users;
  }

  async receive(m: ImServerMessage): Promise<void> {
    switch (m.command) {
      case "ONLINE_USERS":
        return this.onlineUsers(m.users);
      case "INVITATION": {
        const id = String(m.conversation);
        if (m.inviter !== this.me) {
          return this.out.print([`[${id}] `, tone.name(m.inviter), ` invites you: /accept ${id}`], {
            received: true,
          });
        }
        // Our own conversation: join it at once and make it current.
        await this.client.send({ command: "JOIN", conversation: m.conversation });
        this.joined.add(id);
        this.setCurrent(id);
        return this.notice(`[${id}] conversation started; you are in it`);
      }
      case "MESSAGE":
        return this.out.print(this.messageLine(m), { received: true });
      case "CONVERSATIONS": {
        const entries = Object.entries(m.conversations);
        if (entries.length === 0) return this.out.print("No conversations", { received: true });
        return this.out.printLines(
          entries.map(([id, members]) => `[${id}] ${members.join(", ") || "(nobody yet)"}`),
          { received: true },
        );
      }
      case "ERROR":
        return this.error(m.text);
    }
  }

  messageLine(m: Extract<ImServerMessage, { command: "MESSAGE" }>): Line {
    const head = `[${m.conversation}] `;
    if (m.sender === this.me) return [head, tone.own(`${m.sender}: ${m.message}`)];
    return [head, tone.name(m.sender), `: ${m.message}`];
  }

  /** Handles one typed line; resolves `true` when the user quits. */
  async typed(line: string, quitting: () => void): Promise<boolean> {
    if (line === "") return false;
    if (!line.startsWith("/")) {
      if (this.current === undefined) {
        this.error("no current conversation: /invite someone or /accept an invitation");
      } else await this.say(this.current, line);
      return false;
    }
    const [command, ...rest] = line.split(/\s+/);
    if (command === "/quit") {
      quitting();
      await this.client.send({ command: "GOODBYE" });
      return true;
    }
    await this.command(command, rest, line);
    return false;
  }

  async say(id: string, text: string): Promise<void> {
    await this.client.send({
      command: "SEND_MESSAGE",
      conversation: conversationId(id),
      message: text,
    });
    this.setCurrent(id);
  }

  async command(command: string, rest: string[], line: string): Promise<void> {
    const id = rest[0] !== undefined && /^\d+$/.test(rest[0]) ? rest[0] : undefined;
    const after = (n: number) => line.split(/\s+/).slice(n).join(" ");
    switch (command) {
      case "/invite":
        return rest.length === 0 ? this.error("usage: /invite NAME [NAME...]") : this.invite(rest);
      case "/accept":
        if (id === undefined) return this.error("usage: /accept ID");
        await this.client.send({ command: "JOIN", conversation: conversationId(id) });
        this.joined.add(id);
        return this.setCurrent(id);
      case "/say":
        if (id === undefined || rest.length < 2) return this.error("usage: /say ID TEXT");
        return await this.say(id, after(2));
      case "/leave":
        return id === undefined ? this.error("usage: /leave ID") : await this.leave(id);
      case "/list":
        return await this.client.send({ command: "LIST_CONVERSATIONS" });
      case "/who":
        return this.out.print(formatOnline(this.online));
      case "/status":
        if (rest.length === 0) return this.error("usage: /status TEXT");
        return await this.client.send({ command: "STATUS", status: after(1) });
      case "/help":
        return this.out.printLines(IM_HELP.split("\n"));
      default:
        return this.error(`unknown command ${command}: type /help`);
    }
  }

  /** Invites the users who are online; says at once who is not (nothing is sent if nobody is). */
  async invite(names: string[]): Promise<void> {
    const others = [...new Set(names)].filter((n) => n !== this.me);
    const offline = others.filter((n) => !Object.hasOwn(this.online, n));
    for (const name of offline) this.error(`cannot invite ${name}: not online`);
    const users = others.filter((n) => Object.hasOwn(this.online, n));
    if (others.length === 0) this.error("invite someone other than yourself");
    if (users.length > 0) await this.client.send({ command: "INVITE", users });
  }

  async leave(id: string): Promise<void> {
    await this.client.send({ command: "LEAVE", conversation: conversationId(id) });
    if (!this.joined.delete(id)) return; // not ours as far as we know: the server says why
    this.notice(`[${id}] you left the conversation`);
    if (this.current === id) this.setCurrent([...this.joined].at(-1));
  }
}

function conversationId(id: string): ConversationId {
  return Number(id);
}

/**
 * Runs a registered session until `/quit`, end of input (both say GOODBYE) or
 * the server closing the connection.
 */
export function runImSession(client: ImClient, options: ImSessionOptions): Promise<SessionEnd> {
  const view = new ImView(client, options);
  const messages = options.messages ?? client.messages();
  view.setCurrent(undefined);
  return runSession({
    async read() {
      for (let next = await messages.next(); !next.done; next = await messages.next()) {
        await view.receive(next.value);
      }
    },
    async type(quitting) {
      for await (const line of view.out.lines()) {
        if (await view.typed(line.trim(), quitting)) return;
      }
      quitting();
      await client.send({ command: "GOODBYE" });
    },
    close: () => client.close(),
  });
}

/** The command-line interface of `clients/im.ts`. */
export const IM_CLIENT_COMMAND: CommandSpec = withClientFlags({
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
});

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, IM_CLIENT_COMMAND, async ({ values }) => {
    const user = values.user ? String(values.user) : "";
    if (!/^\S+$/.test(user)) throw new UsageError("--user NAME is required (no spaces)");
    const host = String(values.host);
    const port = portValue(values.port);
    const out = new ClientConsole({ ...consoleFlags(values) });
    let client: ImClient;
    try {
      client = await connectIm(host, port, tlsClientOptions(values));
    } catch (error) {
      printError(`Unable to connect to ${host}:${port}${tlsFailure(error)}`);
      Deno.exit(1);
    }
    const closedText = `Server at ${host}:${port} has disconnected`;
    const messages = client.messages();
    let registered: Awaited<ReturnType<typeof registerIm>>;
    try {
      registered = await registerIm(client, messages, {
        user,
        status: String(values.status),
        console: out,
      });
    } catch (error) {
      client.close();
      exitAfter(out, sessionEndOf(error), closedText);
    }
    if ("quit" in registered) {
      client.close();
      out.finish();
      Deno.exit(0);
    }
    if ("refused" in registered) {
      client.close();
      out.finish();
      printError(`Cannot register as ${user}: ${registered.refused}`);
      Deno.exit(1);
    }
    out.print([tone.notice(formatOnline(registered.online))], { received: true });
    const end = await runImSession(client, { ...registered, console: out, messages });
    exitAfter(out, end, closedText);
  });
}

if (import.meta.main) await main(Deno.args);
