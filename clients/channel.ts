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
import { readFrames } from "../protocols/frames.ts";
import { readLines, type Screen, stdoutScreen } from "../cli/terminal.ts";
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

/** The prompt shown before every typed line. */
export const CHANNEL_PROMPT = "[Me] ";
/** What the client writes to wipe the prompt before showing a message. */
export const CHANNEL_WIPE = "\r    \r";

/** A connection to a channel server, after the name was sent. */
export interface ChannelClient {
  /** Sends one message (padded to 200 bytes); throws `RangeError` if it does not fit. */
  send(text: string): Promise<void>;
  /** Every message from the server, until it disconnects. */
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
    async *messages() {
      try {
        yield* readFrames(conn.readable, new ChannelDecoder());
      } catch (error) {
        // A reset or this side closing both mean: the server is gone.
        if (!(isConnectionGone(error) || isFrameError(error))) throw error;
      }
    },
    close,
    [Symbol.dispose]: close,
  };
}

/** What {@link runChannelSession} needs. */
export interface ChannelSessionOptions {
  /** Server host as typed by the user (for the disconnect text). */
  host: string;
  /** Server port as typed by the user. */
  port: string | number;
  /** The typed lines. */
  lines: AsyncIterable<string>;
  /** Where to write (default stdout). */
  screen?: Screen;
}

/**
 * Runs the interactive session: prompt, typed lines out, server messages in,
 * both at once. Resolves with `"disconnected"` when the server goes away or
 * `"eof"` when input ends.
 */
export async function runChannelSession(
  client: ChannelClient,
  options: ChannelSessionOptions,
): Promise<"disconnected" | "eof"> {
  const screen = options.screen ?? stdoutScreen;
  screen.write(CHANNEL_PROMPT);
  const incoming = (async () => {
    for await (const message of client.messages()) {
      screen.write(`${CHANNEL_WIPE}${message}\n${CHANNEL_PROMPT}`);
    }
    return "disconnected" as const;
  })();
  const typing = (async () => {
    for await (const line of options.lines) {
      const bytes = channelTextBytes(line);
      if (bytes > CHANNEL_FRAME_BYTES) {
        screen.write(
          `Message not sent: it is ${bytes} bytes and a message is at most ${CHANNEL_FRAME_BYTES}.\n${CHANNEL_PROMPT}`,
        );
        continue;
      }
      try {
        await client.send(line);
      } catch {
        break; // the reader reports the disconnect
      }
      screen.write(CHANNEL_PROMPT);
    }
    return "eof" as const;
  })();
  const first = await Promise.race([incoming, typing]);
  if (first === "disconnected") {
    screen.write(
      `${CHANNEL_WIPE}${CHANNEL_TEXTS.serverDisconnected(options.host, options.port)}\n`,
    );
  } else {
    client.close();
    await incoming;
  }
  return first;
}

/** The command-line interface of `clients/channel.ts`. */
export const CHANNEL_CLIENT_COMMAND: CommandSpec = {
  name: "clients/channel.ts",
  usage: "NAME HOST PORT",
  summary:
    "Channel chat client. Type /create NAME, /join NAME, /list, or a message to your channel.",
  flags: { ...TLS_CLIENT_FLAGS, help: { type: "boolean", description: "show this help and exit" } },
};

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, CHANNEL_CLIENT_COMMAND, async ({ values, positionals }) => {
    if (positionals.length !== 3) throw new UsageError("expected NAME HOST PORT");
    const [name, host, portText] = positionals;
    const port = portValue(portText);
    if (channelTextBytes(name) > CHANNEL_FRAME_BYTES) {
      throw new UsageError(`the name is over ${CHANNEL_FRAME_BYTES} bytes`);
    }
    const tls = tlsClientOptions(values);
    let client: ChannelClient;
    try {
      client = await connectChannel(name, host, port, tls);
    } catch (error) {
      stdoutScreen.write(`${CHANNEL_TEXTS.unableToConnect(host, portText)}${tlsFailure(error)}\n`);
      Deno.exit(1);
    }
    const lines = readLines();
    const result = await runChannelSession(client, { host, port: portText, lines });
    client.close();
    // stdin may still be waiting for a line: leave now.
    void result;
    Deno.exit(0);
  });
}

if (import.meta.main) await main(Deno.args);
