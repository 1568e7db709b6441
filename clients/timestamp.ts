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

import {
  choiceValue,
  type CommandSpec,
  portValue,
  runCommand,
  TLS_CLIENT_FLAGS,
  tlsClientOptions,
  UsageError,
} from "../cli/command.ts";
import { ClientConsole, consoleFlags, withClientFlags } from "../cli/console.ts";
import { exitAfter, runSession, type SessionEnd } from "../cli/session.ts";
import { tone } from "../cli/render.ts";
import { printError } from "../cli/terminal.ts";
import { ByteQueue, type FrameDecoder } from "../protocols/frames.ts";
import { Connection } from "../net/connection.ts";
import {
  connectWithTimeout,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type TlsDialOptions,
} from "../net/dial.ts";
import { receiveFrames } from "../net/framing.ts";
import {
  TIMESTAMP_PORT,
  TIMESTAMP_SOCKET_PATH,
  TIMESTAMP_TRANSPORTS,
  type TimestampTransport,
} from "../protocols/timestamp.ts";

import { writeAll } from "../net/bytes.ts";

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
  /**
   * Resolves as soon as the connection ends (TCP, Unix: the server closed or
   * reset it, or this side closed it); a reply line over 1 MiB rejects. Over
   * UDP there is no connection: it never resolves.
   */
  closed: Promise<void>;
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
    // The reply comes back to this socket: bind it in the server's address family.
    const local = hostname.includes(":") ? "::" : "0.0.0.0";
    const socket = Deno.listenDatagram({ transport: "udp", hostname: local, port: 0 });
    const closed = Promise.withResolvers<void>();
    const close = () => {
      try {
        socket.close();
      } catch { /* closed already */ }
      closed.resolve();
    };
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
      closed: closed.promise, // UDP has no connection: it ends when the user quits
      close,
      [Symbol.dispose]: close,
    };
  }
  const conn = transport === "unix"
    ? await Deno.connect({ transport: "unix", path: options.path ?? TIMESTAMP_SOCKET_PATH })
    : await connectWithTimeout(hostname, port, DEFAULT_CONNECT_TIMEOUT_MS, options.tls);
  if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
  return streamClient(conn);
}

/** The longest reply line the client accepts. */
export const TIMESTAMP_CLIENT_MAX_LINE_BYTES = 1024 * 1024;

/** Reply lines: text up to each LF (LF and a CR before it removed), at most 1 MiB. */
class ReplyLineDecoder implements FrameDecoder<string> {
  readonly #queue = new ByteQueue();

  decode(chunk: Uint8Array): string[] {
    this.#queue.append(chunk);
    const lines: string[] = [];
    let nl: number;
    while ((nl = this.#queue.findLineEnd(TIMESTAMP_CLIENT_MAX_LINE_BYTES, "reply line")) !== -1) {
      lines.push(decoder.decode(this.#queue.take(nl + 1)).replace(/\r?\n$/, ""));
    }
    return lines;
  }

  end(): void {} // a reply cut short by the close is dropped with the connection
}

/**
 * A TCP or Unix client: reads all the time, so a server that goes away is
 * noticed at once, not at the next request.
 */
function streamClient(conn: Deno.Conn): TimestampClient {
  const replies: string[] = [];
  const waiting: (() => void)[] = [];
  let ended = false;
  const wake = () => {
    for (const w of waiting.splice(0)) w();
  };
  const closed = (async () => {
    try {
      for await (const line of receiveFrames(new Connection(conn), new ReplyLineDecoder())) {
        replies.push(line);
        wake();
      }
    } finally {
      ended = true;
      wake();
    }
  })();
  closed.catch(() => {}); // awaited by the session; a library user need not await it
  let isClosed = false;
  const close = () => {
    if (!isClosed) conn.close();
    isClosed = true;
  };
  return {
    async request(line) {
      await writeAll(conn, encoder.encode(`${line}\n`));
      while (replies.length === 0) {
        if (ended) throw new Deno.errors.ConnectionReset("The server closed the connection");
        await new Promise<void>((r) => waiting.push(r));
      }
      return replies.shift()!;
    },
    closed,
    close,
    [Symbol.dispose]: close,
  };
}

/** The interactive help of the timestamp client. */
export const TIMESTAMP_HELP: readonly string[] = [
  "TEXT     send TEXT; the server sends it back with its time",
  "/quit    leave (an empty line, Ctrl+D and Ctrl+C do too)",
  "/help    this list",
];

/**
 * Runs the prompt loop: `> `, send, print the reply; an empty line or the end
 * of input quits. Ends at once when the server closes the connection.
 */
export function runTimestampPrompt(
  client: TimestampClient,
  out: ClientConsole,
): Promise<SessionEnd> {
  out.ready();
  return runSession({
    read: () => client.closed,
    async type() {
      for await (const line of out.lines()) {
        if (line === "") return;
        if (out.interactive && line.startsWith("/")) { // piped input is all data (SPEC.md 5)
          const word = line.split(/\s/)[0];
          if (word === "/quit") return;
          if (word === "/help") out.printLines(TIMESTAMP_HELP);
          else out.print([tone.error(`Unknown command ${word}: type /help`)]);
          continue;
        }
        out.print(await client.request(line), { received: true });
        out.ready();
      }
    },
    close: () => client.close(),
  });
}

/** The command-line interface of `clients/timestamp.ts`. */
export const TIMESTAMP_CLIENT_COMMAND: CommandSpec = withClientFlags({
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
});

/** Runs the client from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, TIMESTAMP_CLIENT_COMMAND, async ({ values }) => {
    const transport = choiceValue(values.transport, "transport", TIMESTAMP_TRANSPORTS);
    const port = portValue(values.port);
    const host = String(values.host);
    const where = transport === "unix" ? String(values.path) : `${host}:${port}`;
    const tls = tlsClientOptions(values);
    if (tls && transport !== "tcp") throw new UsageError("--tls needs --transport tcp");
    const out = new ClientConsole({
      ...consoleFlags(values),
      prompt: "> ",
      keepInput: true,
      plain: { prompt: "> " },
    });
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
      printError(
        `Unable to connect to ${where}: ${error instanceof Error ? error.message : error}`,
      );
      Deno.exit(1);
    }
    let end: SessionEnd;
    try {
      end = await runTimestampPrompt(client, out);
    } catch (error) {
      if (!(error instanceof Deno.errors.TimedOut)) throw error;
      out.finish();
      printError(error.message); // over UDP a server that is not there just never answers
      Deno.exit(1);
    }
    exitAfter(out, end, `Server at ${where} has disconnected`);
  });
}

if (import.meta.main) await main(Deno.args);
