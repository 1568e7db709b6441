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
import { encodeTimestampReply, TimestampChunkDecoder } from "../protocols/timestamp.ts";
import { formatAddr, formatHostPort } from "../net/address.ts";
import { receiveFrames } from "../net/framing.ts";
import { listenError, listenUnix } from "../net/listen.ts";
import { type Server, type ServerLimits, serveStream, type TlsCertificate } from "../net/serve.ts";
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
export interface TimestampOptions extends ServerLimits {
  /** `tcp` (default), `udp` or `unix`. */
  transport?: TimestampTransport;
  /** Address to listen on (TCP, UDP); default `127.0.0.1`. */
  hostname?: string;
  /** Port (TCP, UDP); default 21567, 0 picks a free one. */
  port?: number;
  /** Socket path (Unix); default `/tmp/parley-timestamp.sock`. */
  path?: string;
  /** The clock (tests inject a fixed one). */
  clock?: () => Date;
  /** TCP only: speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
}

const logger = getLogger(["parley", "timestamp"]);

/**
 * Starts a timestamp server. Its unit is a chunk, not a frame: each read is
 * answered at once ({@link TimestampChunkDecoder}), so `--frame-timeout`
 * never applies and there is no registration step; the per-address and total
 * connection limits do (a refused connection is told why in one line).
 *
 * A Unix socket is only created where no live server answers (a live one is a
 * `ListenError` "PATH is already in use"); a stale socket file is replaced,
 * and on shutdown the file is removed only if it is still this server's.
 *
 * @example
 * ```ts
 * import { serveTimestamp } from "./timestamp.ts";
 * await using server = await serveTimestamp({ port: 0 });
 * const conn = await Deno.connect({ port: (server.addr as Deno.NetAddr).port });
 * await conn.write(new TextEncoder().encode("hello"));
 * const buf = new Uint8Array(100);
 * const n = await conn.read(buf);
 * console.assert(new TextDecoder().decode(buf.subarray(0, n!)).endsWith("] hello"));
 * conn.close();
 * ```
 */
export async function serveTimestamp(options: TimestampOptions = {}): Promise<Server> {
  const clock = options.clock ?? (() => new Date());
  const transport = options.transport ?? "tcp";
  if (transport === "udp") return serveTimestampUdp(options, clock);
  const server = serveStream(
    transport === "unix" ? await listenUnix(options.path ?? TIMESTAMP_SOCKET_PATH) : {
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? TIMESTAMP_PORT,
      tls: options.tls,
    },
    async (connection) => {
      logger.debug("Connected from {peer}", { peer: formatAddr(connection.remoteAddr) });
      for await (const chunk of receiveFrames(connection, new TimestampChunkDecoder())) {
        connection.send(encodeTimestampReply(chunk, clock()));
      }
    },
    {
      ...options,
      registerTimeoutMs: 0,
      logger,
      refuse: (text) => encoder.encode(`${text}\n`),
    },
  );
  logger.info("Listening on {addr} ({transport})", { addr: formatAddr(server.addr), transport });
  return server;
}

const encoder = new TextEncoder();

function serveTimestampUdp(options: TimestampOptions, clock: () => Date): Server {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? TIMESTAMP_PORT;
  let socket: Deno.DatagramConn;
  try {
    socket = Deno.listenDatagram({ transport: "udp", hostname, port });
  } catch (error) {
    throw listenError(error, formatHostPort(hostname, port));
  }
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

function withoutRegisterTimeout(flags: typeof SERVER_FLAGS): typeof SERVER_FLAGS {
  const { "register-timeout": _unused, ...rest } = flags;
  return rest;
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
    // The timestamp protocol has no registration step.
    ...withoutRegisterTimeout(SERVER_FLAGS),
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
    await runServer(
      values,
      logger,
      () => serveTimestamp({ ...basics, transport, port, path: String(values.path) }),
    );
  });
}

if (import.meta.main) await main(Deno.args);
