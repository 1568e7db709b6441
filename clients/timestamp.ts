/**
 * Interactive timestamp client (seed 002): prompt `> `, each typed line is
 * sent to the timestamp server and its reply `[<ctime>] <line>` printed. An
 * empty line quits.
 *
 * ```sh
 * deno run --allow-net clients/timestamp.ts                       # TCP 127.0.0.1:21567
 * deno run --allow-net --unstable-net clients/timestamp.ts --transport udp
 * deno run --allow-net --allow-read --allow-write clients/timestamp.ts --transport unix
 * ```
 *
 * @module
 */

import { readLines, type Screen, stdoutScreen } from "../cli/terminal.ts";
import {
  choiceValue,
  type CommandSpec,
  portValue,
  runCommand,
  TLS_CLIENT_FLAGS,
  tlsClientOptions,
  UsageError,
} from "../cli/command.ts";
import {
  connectWithTimeout,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type TlsDialOptions,
} from "../net/dial.ts";
import {
  TIMESTAMP_PORT,
  TIMESTAMP_SOCKET_PATH,
  TIMESTAMP_TRANSPORTS,
  type TimestampTransport,
} from "../protocols/timestamp.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** How long the UDP client waits for a reply before saying the server did not answer. */
export const UDP_REPLY_TIMEOUT_MS = 5000;

/** Options of {@link connectTimestamp}. */
export interface TimestampClientOptions {
  /** `tcp` (default), `udp` or `unix`. */
  transport?: TimestampTransport;
  /** Server host (TCP, UDP); default `127.0.0.1`. */
  hostname?: string;
  /** Server port (TCP, UDP); default 21567. */
  port?: number;
  /** Socket path (Unix). */
  path?: string;
  /** TCP only: connect with TLS (`--tls`, `--ca`). */
  tls?: TlsDialOptions;
}

/** A connection to a timestamp server. */
export interface TimestampClient {
  /** Sends one line and resolves with the server's reply, without its line ending. */
  request(line: string): Promise<string>;
  /** Closes the connection. */
  close(): void;
  /** Same as {@link TimestampClient.close}, for `using`. */
  [Symbol.dispose](): void;
}

/**
 * Connects to a timestamp server.
 *
 * @example
 * ```ts
 * import { serveTimestamp } from "../servers/timestamp.ts";
 * import { connectTimestamp } from "./timestamp.ts";
 * await using server = await serveTimestamp({ port: 0 });
 * using client = await connectTimestamp({ port: (server.addr as Deno.NetAddr).port });
 * console.assert((await client.request("hi")).endsWith("] hi"));
 * ```
 */
export async function connectTimestamp(
  options: TimestampClientOptions = {},
): Promise<TimestampClient> {
  const transport = options.transport ?? "tcp";
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? TIMESTAMP_PORT;
  if (transport === "udp") {
    const socket = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const close = () => socket.close();
    return {
      async request(line) {
        await socket.send(encoder.encode(`${line}\n`), { transport: "udp", hostname, port });
        // UDP has no connection to lose: a server that is not there just never answers.
        const receiving = socket.receive();
        let timer: ReturnType<typeof setTimeout> | undefined;
        const silence = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            receiving.catch(() => {}); // closing the socket later ends this receive
            const seconds = UDP_REPLY_TIMEOUT_MS / 1000;
            reject(
              new Deno.errors.TimedOut(`No reply from ${hostname}:${port} within ${seconds} s`),
            );
          }, UDP_REPLY_TIMEOUT_MS);
        });
        const [data] = await Promise.race([receiving, silence]).finally(() => clearTimeout(timer));
        return decoder.decode(data).replace(/\r?\n$/, "");
      },
      close,
      [Symbol.dispose]: close,
    };
  }
  const conn = transport === "unix"
    ? await Deno.connect({ transport: "unix", path: options.path ?? TIMESTAMP_SOCKET_PATH })
    : await connectWithTimeout(hostname, port, DEFAULT_CONNECT_TIMEOUT_MS, options.tls);
  if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  const buffer = new Uint8Array(64 * 1024);
  let closed = false;
  const close = () => {
    if (!closed) conn.close();
    closed = true;
  };
  return {
    async request(line) {
      await conn.write(encoder.encode(`${line}\n`));
      let reply = "";
      // The reply ends with the newline we sent; read until it arrives.
      while (!reply.endsWith("\n")) {
        const n = await conn.read(buffer);
        if (n === null) throw new Deno.errors.ConnectionReset("The server closed the connection");
        reply += decoder.decode(buffer.subarray(0, n), { stream: true });
      }
      return reply.replace(/\r?\n$/, "");
    },
    close,
    [Symbol.dispose]: close,
  };
}

/** Runs the prompt loop: `> `, send, print the reply; stops at an empty line or end of input. */
export async function runTimestampPrompt(
  client: TimestampClient,
  lines: AsyncIterable<string>,
  screen: Screen = stdoutScreen,
): Promise<void> {
  screen.write("> ");
  for await (const line of lines) {
    if (line === "") break;
    screen.write(`${await client.request(line)}\n> `);
  }
}

/** The command-line interface of `clients/timestamp.ts`. */
export const TIMESTAMP_CLIENT_COMMAND: CommandSpec = {
  name: "clients/timestamp.ts",
  usage: "[--transport tcp|udp|unix] [--host HOST] [--port PORT] [--path PATH]",
  summary:
    "Timestamp client: type a line, see it come back with the server's time. An empty line quits.",
  flags: {
    transport: { type: "string", default: "tcp", value: "T", description: "tcp | udp | unix" },
    host: { type: "string", default: "127.0.0.1", value: "HOST", description: "server host" },
    port: {
      type: "string",
      default: String(TIMESTAMP_PORT),
      value: "PORT",
      description: "server port",
    },
    path: {
      type: "string",
      default: TIMESTAMP_SOCKET_PATH,
      value: "PATH",
      description: "socket path (unix)",
      aliases: ["socket", "socket-path"],
    },
    ...TLS_CLIENT_FLAGS,
    help: { type: "boolean", description: "show this help and exit" },
  },
};

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, TIMESTAMP_CLIENT_COMMAND, async ({ values }) => {
    const transport = choiceValue(values.transport, "transport", TIMESTAMP_TRANSPORTS);
    const port = portValue(values.port);
    const host = String(values.host);
    const tls = tlsClientOptions(values);
    if (tls && transport !== "tcp") throw new UsageError("--tls needs --transport tcp");
    let client: TimestampClient;
    try {
      client = await connectTimestamp({
        transport,
        hostname: host,
        port,
        path: String(values.path),
        tls,
      });
    } catch (error) {
      const where = transport === "unix" ? String(values.path) : `${host}:${port}`;
      console.error(
        `Unable to connect to ${where}: ${error instanceof Error ? error.message : error}`,
      );
      Deno.exit(1);
    }
    try {
      await runTimestampPrompt(client, readLines());
    } catch (error) {
      console.error(`\n${error instanceof Error ? error.message : error}`);
      Deno.exitCode = 1;
    } finally {
      client.close();
    }
  });
}

if (import.meta.main) await main(Deno.args);
