/**
 * `deno task start`: runs every Parley server in one process on its default
 * port and prints where each listens and how to connect a client to it.
 *
 * @module
 */

import { exitOnSignal } from "./cli/signals.ts";
import { formatAddr } from "./net/address.ts";
import type { Server } from "./net/serve.ts";
import { type CommandSpec, runCommand, SERVER_FLAGS } from "./cli/command.ts";
import { setupLogging } from "./cli/logging.ts";
import { serveTimestamp } from "./servers/timestamp.ts";
import { serveChannel } from "./servers/channel.ts";
import { serveDirectory } from "./servers/directory.ts";
import { serveIm } from "./servers/im.ts";
import { serveWeb } from "./servers/web.ts";
import { serveCrcNode } from "./servers/crc_node.ts";

/** One server started by {@link startAll}, with the command that connects to it. */
export interface StartedServer {
  /** What it is. */
  name: string;
  /** The running server. */
  server: Server;
  /** The command a person runs to talk to it. */
  client: string;
}

/** Options of {@link startAll}. */
export interface StartAllOptions {
  /** Address every server listens on (default 127.0.0.1). */
  hostname?: string;
  /** Use port 0 everywhere (for tests) instead of the default ports. */
  anyPort?: boolean;
  /** Unix socket path of the timestamp server. */
  timestampPath?: string;
  /** Account database of the directory (default `./parley-directory.db`). */
  directoryDb?: string;
}

/**
 * Starts every Parley server with its embedded defaults.
 *
 * @example
 * ```ts
 * import { startAll } from "./start.ts";
 * const dir = await Deno.makeTempDir();
 * const started = await startAll({ anyPort: true, timestampPath: `${dir}/ts.sock`, directoryDb: ":memory:" });
 * await Promise.all(started.map((s) => s.server.shutdown()));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function startAll(options: StartAllOptions = {}): Promise<StartedServer[]> {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = (p: number) => options.anyPort ? 0 : p;
  const portOf = (s: Server) => (s.addr as Deno.NetAddr).port;
  const started: StartedServer[] = [];
  const run = `deno run --allow-net`;
  try {
    const tcp = await serveTimestamp({ transport: "tcp", hostname, port: port(21567) });
    started.push({
      name: "timestamp (tcp)",
      server: tcp,
      client: `${run} clients/timestamp.ts --host ${hostname} --port ${portOf(tcp)}`,
    });
    const udp = await serveTimestamp({ transport: "udp", hostname, port: port(21567) });
    started.push({
      name: "timestamp (udp)",
      server: udp,
      client:
        `${run} --unstable-net clients/timestamp.ts --transport udp --host ${hostname} --port ${
          portOf(udp)
        }`,
    });
    const unix = await serveTimestamp({ transport: "unix", path: options.timestampPath });
    started.push({
      name: "timestamp (unix)",
      server: unix,
      client: `${run} --allow-read --allow-write clients/timestamp.ts --transport unix --path ${
        formatAddr(unix.addr)
      }`,
    });
    const directory = serveDirectory({ hostname, port: port(8888), db: options.directoryDb });
    started.push({
      name: "eurechat directory",
      server: directory,
      client:
        `${run} clients/eurechat.ts --user NAME --directory-host ${hostname} --directory-port ${
          portOf(directory)
        }`,
    });
    const im = serveIm({ hostname, port: port(6666) });
    started.push({
      name: "IM conversations",
      server: im,
      client: `${run} clients/im.ts --user NAME --host ${hostname} --port ${portOf(im)}`,
    });
    const web = serveWeb({ hostname, port: port(8080), im: { hostname, port: portOf(im) } });
    started.push({
      name: "web client (IM)",
      server: web,
      client: `open http://${formatAddr(web.addr)}/ in a browser`,
    });
    const crc = await serveCrcNode({ hostname, port: port(3600), name: "parley" });
    started.push({
      name: "CRC node",
      server: crc,
      client: `${run} clients/crc.ts --username NAME --serverhost ${hostname} --serverport ${
        portOf(crc)
      }`,
    });
    const channel = serveChannel({ hostname, port: port(55555) });
    started.push({
      name: "channel chat",
      server: channel,
      client: `${run} clients/channel.ts NAME ${hostname} ${portOf(channel)}`,
    });
  } catch (error) {
    // One port already taken: stop what did start, then report.
    await Promise.allSettled(started.map((s) => s.server.shutdown()));
    throw error;
  }
  return started;
}

const START_COMMAND: CommandSpec = {
  name: "start.ts",
  usage: "[--host HOST] [--log-level LEVEL] [--log-format pretty|json]",
  summary: "Starts every Parley server on its default port in one process.",
  flags: {
    host: SERVER_FLAGS.host,
    // Each server's own "Listening on" line would repeat the table start.ts prints.
    "log-level": { ...SERVER_FLAGS["log-level"], default: "warning" },
    "log-format": SERVER_FLAGS["log-format"],
    help: SERVER_FLAGS.help,
  },
};

if (import.meta.main) {
  await runCommand(Deno.args, START_COMMAND, async ({ values }) => {
    await setupLogging(values);
    const signals = exitOnSignal();
    const started = await startAll({ hostname: String(values.host) });
    for (const { server } of started) signals.add(server);
    console.log("Parley is running. Press Ctrl+C to stop.\n");
    for (const { name, server, client } of started) {
      console.log(`${name.padEnd(22)} ${formatAddr(server.addr)}\n${"".padEnd(22)} ${client}`);
    }
    await Promise.all(started.map((s) => s.server.finished));
  });
}
