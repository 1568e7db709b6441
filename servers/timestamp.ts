/**
 * Timestamp echo server (seeds 001 and 002, SPEC.md section 5): every chunk
 * read over TCP or a Unix socket, and every UDP datagram, is answered with
 * `[<ctime>] <data>`.
 *
 * ```sh
 * deno run --allow-net servers/timestamp.ts                        # TCP on 127.0.0.1:21567
 * deno run --allow-net --unstable-net servers/timestamp.ts --transport udp
 * deno run --allow-net --allow-read --allow-write servers/timestamp.ts --transport unix --path /tmp/ts.sock
 * ```
 *
 * @module
 */

import {
  TIMESTAMP_PORT,
  TIMESTAMP_SOCKET_PATH,
  TIMESTAMP_TRANSPORTS,
  type TimestampTransport,
} from "../protocols/timestamp.ts";
import { getLogger } from "@logtape/logtape";
import { encodeTimestampReply } from "../protocols/timestamp.ts";
import { formatAddr } from "../net/address.ts";
import { type Server, serveStream, type TlsCertificate } from "../net/serve.ts";
import {
  choiceValue,
  type CommandSpec,
  portValue,
  runCommand,
  SERVER_FLAGS,
  serverBasics,
  TLS_SERVER_FLAGS,
  UsageError,
} from "../cli/command.ts";
import { runServer } from "../cli/run_server.ts";

/** Options of {@link serveTimestamp}. */
export interface TimestampOptions {
  /** `tcp` (default), `udp` or `unix`. */
  transport?: TimestampTransport;
  /** Address to listen on (TCP, UDP); default `127.0.0.1`. */
  hostname?: string;
  /** Port (TCP, UDP); default 21567, 0 picks a free one. */
  port?: number;
  /** Socket path (Unix); default `/tmp/parley-timestamp.sock`. */
  path?: string;
  /** Send-queue limit per connection (TCP, Unix). */
  maxQueueBytes?: number;
  /** The clock (tests inject a fixed one). */
  clock?: () => Date;
  /** TCP only: speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
}

const logger = getLogger(["parley", "timestamp"]);

/**
 * Starts a timestamp server.
 *
 * @example
 * ```ts
 * import { serveTimestamp } from "./timestamp.ts";
 * await using server = serveTimestamp({ port: 0 });
 * const conn = await Deno.connect({ port: (server.addr as Deno.NetAddr).port });
 * await conn.write(new TextEncoder().encode("hello"));
 * const buf = new Uint8Array(100);
 * const n = await conn.read(buf);
 * console.assert(new TextDecoder().decode(buf.subarray(0, n!)).endsWith("] hello"));
 * conn.close();
 * ```
 */
export function serveTimestamp(options: TimestampOptions = {}): Server {
  const clock = options.clock ?? (() => new Date());
  const transport = options.transport ?? "tcp";
  if (transport === "udp") return serveTimestampUdp(options, clock);
  let path: string | undefined;
  if (transport === "unix") {
    path = options.path ?? TIMESTAMP_SOCKET_PATH;
    removeStaleSocket(path);
  }
  const server = serveStream(
    path !== undefined ? { transport: "unix", path } : {
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? TIMESTAMP_PORT,
      tls: options.tls,
    },
    async (connection) => {
      logger.debug("Connected from {peer}", { peer: formatAddr(connection.remoteAddr) });
      for await (const chunk of connection.chunks()) {
        connection.send(encodeTimestampReply(chunk, clock()));
      }
      await connection.drain();
    },
    {
      logger,
      maxQueueBytes: options.maxQueueBytes,
      onClosed: () => {
        if (path !== undefined) removeStaleSocket(path);
      },
    },
  );
  logger.info("Listening on {addr} ({transport})", { addr: formatAddr(server.addr), transport });
  return server;
}

function removeStaleSocket(path: string): void {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch { /* absent */ }
}

function serveTimestampUdp(options: TimestampOptions, clock: () => Date): Server {
  const socket = Deno.listenDatagram({
    transport: "udp",
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? TIMESTAMP_PORT,
  });
  let stopping = false;
  const loop = (async () => {
    while (true) {
      let data: Uint8Array, peer: Deno.Addr;
      try {
        [data, peer] = await socket.receive();
      } catch (error) {
        if (stopping) return;
        logger.warn("Receive failed: {error}", { error: String(error) });
        continue;
      }
      try {
        await socket.send(encodeTimestampReply(data, clock()), peer);
      } catch (error) {
        logger.debug("Reply to {peer} failed: {error}", {
          peer: formatAddr(peer),
          error: String(error),
        });
      }
    }
  })();
  let done: Promise<void> | undefined;
  const shutdown = () =>
    done ??= (async () => {
      stopping = true;
      try {
        socket.close();
      } catch { /* closed */ }
      await loop;
    })();
  const finished = (async () => {
    await loop;
  })();
  logger.info("Listening on {addr} (udp)", { addr: formatAddr(socket.addr) });
  return { addr: socket.addr, finished, shutdown, [Symbol.asyncDispose]: shutdown };
}

/** The command-line interface of `servers/timestamp.ts`. */
export const TIMESTAMP_COMMAND: CommandSpec = {
  name: "servers/timestamp.ts",
  usage: "[--transport tcp|udp|unix] [--host HOST] [--port PORT] [--path PATH]",
  summary: "Timestamp echo server: answers every message with '[<ctime>] <message>'.",
  flags: {
    transport: { type: "string", default: "tcp", value: "T", description: "tcp | udp | unix" },
    port: {
      type: "string",
      default: String(TIMESTAMP_PORT),
      value: "PORT",
      description: "port (tcp, udp); 0 picks one",
    },
    path: {
      type: "string",
      default: TIMESTAMP_SOCKET_PATH,
      value: "PATH",
      description: "socket path (unix)",
      aliases: ["socket", "socket-path"],
    },
    ...TLS_SERVER_FLAGS,
    ...SERVER_FLAGS,
  },
  epilog:
    "UDP needs Deno's --unstable-net; a Unix socket needs --allow-read and --allow-write (and --allow-net, which Deno 2.9 checks for socket paths too).",
};

/** Runs the timestamp server from command-line arguments until SIGINT/SIGTERM. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, TIMESTAMP_COMMAND, async ({ values }) => {
    const transport = choiceValue(values.transport, "transport", TIMESTAMP_TRANSPORTS);
    const port = portValue(values.port);
    const basics = serverBasics(values);
    if (basics.tls && transport !== "tcp") throw new UsageError("--tls-cert needs --transport tcp");
    await runServer(values, logger, () =>
      serveTimestamp({
        transport,
        hostname: basics.hostname,
        port,
        path: String(values.path),
        maxQueueBytes: basics.maxQueueBytes,
        tls: basics.tls,
      }));
  });
}

if (import.meta.main) await main(Deno.args);
