/**
 * Channel chat client (seed 004, SPEC.md 4.3).
 *
 * ```sh
 * deno run --allow-net clients/channel.ts Alice 127.0.0.1 55555
 * ```
 *
 * Sends NAME, then shows the prompt `[Me] ` and sends every typed line padded
 * to 200 bytes. A message from the server overwrites the prompt: `\r`, four
 * spaces, `\r`, the message, a newline, and the prompt again. A typed line
 * longer than a frame is refused with a message, never truncated.
 *
 * @module
 */

import {
  CHANNEL_FRAME_BYTES,
  CHANNEL_TEXTS,
  ChannelDecoder,
  channelTextBytes,
  encodeChannelFrame,
} from "../protocols/channel.ts";
import {
  type CommandSpec,
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
import { type Line, tone, visible } from "../cli/render.ts";
import { stdoutScreen } from "../cli/terminal.ts";
import { exitAfter, runSession, type SessionEnd } from "../cli/session.ts";
import { writeAll } from "../net/bytes.ts";

/** The prompt shown before every typed line. */
export const CHANNEL_PROMPT = "[Me] ";
/** What the client writes to wipe the prompt before showing a message. */
export const CHANNEL_WIPE = "\r    \r";

/** A connection to a channel server, after the name was sent. */
export interface ChannelClient {
  /** Sends one message (padded to 200 bytes); throws `RangeError` if it does not fit. */
  send(text: string): Promise<void>;
  /** Every message from the server, until it disconnects or resets; a bad frame throws. */
  messages(): AsyncGenerator<string>;
  /** Closes the connection. */
  close(): void;
  /** Same as {@link ChannelClient.close}, for `using`. */
  [Symbol.dispose](): void;
}

/**
 * Connects to a channel server and sends the name.
 *
 * @example
 * ```ts
 * import { serveChannel } from "../servers/channel.ts";
 * import { connectChannel } from "./channel.ts";
 * await using server = serveChannel({ port: 0 });
 * using alice = await connectChannel("Alice", "127.0.0.1", (server.addr as Deno.NetAddr).port);
 * await alice.send("/list");
 * const reply = await alice.messages().next();
 * console.assert(reply.value === "");
 * ```
 */
export async function connectChannel(
  name: string,
  hostname: string,
  port: number,
  tls?: TlsDialOptions,
): Promise<ChannelClient> {
  const conn = await connectWithTimeout(hostname, port, DEFAULT_CONNECT_TIMEOUT_MS, tls);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch { /* the stream already closed it at end of input */ }
  };
  const write = (bytes: Uint8Array) => writeAll(conn, bytes);
  try {
    await write(encodeChannelFrame(name));
  } catch (error) {
    close();
    throw error;
  }
  return {
    send: (text) => write(encodeChannelFrame(text)),
    messages: () => receiveFrames(new Connection(conn), new ChannelDecoder()),
    close,
    [Symbol.dispose]: close,
  };
}

/** What {@link runChannelSession} needs. */
export interface ChannelSessionOptions {
  /** Where typed lines come from and messages go. */
  console: ClientConsole;
}

/** The help text of the channel client. */
export const CHANNEL_HELP: readonly string[] = [
  "/create NAME   create a channel and join it",
  "/join NAME     join a channel (leaving the one you are in)",
  "/list          list the channels",
  "/quit          leave (Ctrl+D and Ctrl+C do too)",
  "/help          this list",
  "TEXT           say TEXT to your channel",
];

const CHANNEL_COMMANDS = ["/create", "/join", "/list"];

/** How a server message looks: a chat's name coloured, notices and errors told apart. */
export function channelLine(message: string): Line {
  const chat = /^\[([^\]]*)\] /.exec(message);
  if (chat) return ["[", tone.name(chat[1]), "] ", message.slice(chat[0].length)];
  if (/ has (joined|left)$/.test(message)) return [tone.notice(message)];
  const errors = [
    / is not a valid control message\./,
    /^No channel named /,
    /^\/(join|create) command must be followed/,
    /^Room .* already exists/,
    /^Not currently in any channel\./,
  ];
  return errors.some((e) => e.test(message)) ? [tone.error(message)] : [message];
}

/**
 * Runs the session: `[Me] ` prompt, typed lines out, server messages in, both
 * at once (SPEC.md 4.3, 7). An empty line is not sent; `/help` and `/quit` are
 * answered here. A `/list` reply is shown one channel a line; any other
 * message shows a newline as `^J`, so a chat cannot fake a line.
 */
export function runChannelSession(
  client: ChannelClient,
  options: ChannelSessionOptions,
): Promise<SessionEnd> {
  const out = options.console;
  let lists = 0; // replies to /list still due
  out.ready();
  return runSession({
    async read() {
      for await (const message of client.messages()) {
        const isList = lists > 0 && !message.startsWith("[") &&
          (message.includes("\n") || !/ has (joined|left)$/.test(message));
        if (isList) lists--;
        if (isList && message.includes("\n")) {
          out.printLines(message.split("\n"), { received: true });
        } else out.print(channelLine(message), { received: true });
      }
    },
    async type() {
      for await (const line of out.lines()) {
        const word = line.trim().split(/\s+/)[0];
        // Piped input is sent as typed (SPEC.md 4.3, 7.2): /quit and /help are the terminal's.
        if (out.interactive && word === "/quit") return;
        if (out.interactive && word === "/help") {
          out.printLines(CHANNEL_HELP);
          continue;
        }
        if (out.interactive && word.startsWith("/") && !CHANNEL_COMMANDS.includes(word)) {
          out.print([tone.error(`Unknown command ${word}: type /help for the commands`)]);
          continue;
        }
        const bytes = channelTextBytes(line);
        if (bytes > CHANNEL_FRAME_BYTES) {
          out.print([
            tone.error(
              `Message not sent: it is ${bytes} bytes and a message is at most ${CHANNEL_FRAME_BYTES}.`,
            ),
          ]);
          continue;
        }
        if (line.trim() !== "") {
          if (word === "/list") lists++;
          await client.send(line);
        }
        out.ready();
      }
    },
    close: () => client.close(),
  });
}

/** The command-line interface of `clients/channel.ts`. */
export const CHANNEL_CLIENT_COMMAND: CommandSpec = withClientFlags({
  name: "clients/channel.ts",
  usage: "NAME HOST PORT",
  summary:
    "Channel chat client. Type /create NAME, /join NAME, /list, /help, or a message to your channel.",
  flags: { ...TLS_CLIENT_FLAGS, help: { type: "boolean", description: "show this help and exit" } },
});

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, CHANNEL_CLIENT_COMMAND, async ({ values, positionals }) => {
    if (positionals.length !== 3) throw new UsageError("expected NAME HOST PORT");
    const [name, host, portText] = positionals;
    if (!/^\d+$/.test(portText) || Number(portText) > 65535) {
      throw new UsageError(`PORT must be a port number from 0 to 65535, got '${portText}'`);
    }
    if (channelTextBytes(name) > CHANNEL_FRAME_BYTES) {
      throw new UsageError(`the name is over ${CHANNEL_FRAME_BYTES} bytes`);
    }
    const out = new ClientConsole({
      ...consoleFlags(values),
      prompt: CHANNEL_PROMPT,
      keepInput: true,
      plain: { prompt: CHANNEL_PROMPT, wipe: CHANNEL_WIPE, promptAfterLine: true },
    });
    let client: ChannelClient;
    try {
      client = await connectChannel(name, host, Number(portText), tlsClientOptions(values));
    } catch (error) {
      out.close();
      const text = `${CHANNEL_TEXTS.unableToConnect(host, portText)}${tlsFailure(error)}`;
      stdoutScreen.write(`${visible(text)}\n`);
      Deno.exit(1);
    }
    const end = await runChannelSession(client, { console: out });
    exitAfter(out, end, CHANNEL_TEXTS.serverDisconnected(host, portText), { onConsole: true });
  });
}

if (import.meta.main) await main(Deno.args);
