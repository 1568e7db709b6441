/**
 * Clemson Relay Chat node (seed 003, SPEC.md 3.2): servers form a tree, every
 * node knows every host (server or client) and the adjacent link that leads
 * to it, and chats are routed hop by hop along those links.
 *
 * ```sh
 * deno run --allow-net servers/crc_node.ts --id 1 --name hub --port 3600
 * deno run --allow-net servers/crc_node.ts --id 2 --name leaf --port 3601 \
 *   --connect-to-host 127.0.0.1 --connect-to-port 3600 --admin 127.0.0.1:9100
 * ```
 *
 * @module
 */

import { CRC_PORT, CRC_TEXTS, randomCrcId } from "../protocols/crc.ts";
import { getLogger } from "@logtape/logtape";
import {
  CRC_STATUS,
  type CrcFrame,
  CrcFrameDecoder,
  type CrcKind,
  type CrcMessage,
  type CrcRegistration,
  encodeCrc,
} from "../protocols/crc.ts";
import { isFrameError } from "../protocols/errors.ts";
import { Connection } from "../net/connection.ts";
import { connectWithTimeout, type TlsDialOptions } from "../net/dial.ts";
import { formatAddr } from "../net/address.ts";
import { type Server, serveStream, type TlsCertificate } from "../net/serve.ts";
import {
  type CommandSpec,
  intValue,
  portValue,
  runCommand,
  SERVER_FLAGS,
  serverBasics,
  TLS_CLIENT_FLAGS,
  TLS_SERVER_FLAGS,
  tlsClientOptions,
  UsageError,
} from "../cli/command.ts";
import { runServer } from "../cli/run_server.ts";

/** A host this node knows, as `GET /state` shows it. */
export interface CrcHostState {
  /** Its id. */
  id: number;
  /** `server` or `client`. */
  kind: "server" | "client";
  /** Its name. */
  name: string;
  /** Its info. */
  info: string;
  /** The adjacent host on the path to it (itself when adjacent). */
  firstLink: number;
}

/** A node's view of the network (`GET /state`). */
export interface CrcNodeState {
  /** This node's id. */
  id: number;
  /** This node's name. */
  name: string;
  /** This node's info. */
  info: string;
  /** Every other known host, in the order learned. */
  hosts: CrcHostState[];
  /** Ids of adjacent servers. */
  adjacentServers: number[];
  /** Ids of adjacent clients. */
  adjacentClients: number[];
  /** Status texts addressed to this node (or to 0), oldest first. */
  statusLog: string[];
}

/** Options of {@link serveCrcNode}. */
export interface CrcNodeOptions {
  /** This node's 32-bit id (default: random, never 0). */
  id?: number;
  /** This node's name (default `node-<id>`). */
  name?: string;
  /** This node's info. */
  info?: string;
  /** Address to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; default 3600, 0 picks a free one. */
  port?: number;
  /** Join an existing network through this node. */
  connectTo?: { hostname: string; port: number };
  /** Serve `GET /state` and `GET /metrics` here. */
  admin?: { hostname: string; port: number };
  /** Largest content of a chat, status or quit. */
  maxContentBytes?: number;
  /** Send-queue limit per link. */
  maxQueueBytes?: number;
  /** Time allowed to reach `connectTo`, ms (default 5 s). */
  connectTimeoutMs?: number;
  /** Speak TLS only on the node's port, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** Reach `connectTo` over TLS (`--tls`, `--ca`). */
  connectTls?: TlsDialOptions;
}

interface Link {
  connection: Connection;
  /** The adjacent host that registered on this link, once it has. */
  owner?: number;
}

interface Host {
  id: number;
  kind: "server" | "client";
  name: string;
  info: string;
  firstLink: Link;
}

/** A running CRC node. */
export interface CrcNode extends Server {
  /** This node's id. */
  readonly id: number;
  /** The admin endpoint's address, when there is one. */
  readonly adminAddr?: Deno.NetAddr;
  /** The node's view of the network. */
  state(): CrcNodeState;
  /** Prometheus text of the node's counters. */
  metrics(): string;
}

const logger = getLogger(["parley", "crc"]);
const KINDS: CrcKind[] = [
  "server_registration",
  "client_registration",
  "status",
  "chat",
  "client_quit",
  "server_quit",
];

/**
 * Starts a CRC node; with `connectTo`, it joins that node's network first
 * (and fails if it cannot reach it).
 *
 * @example
 * ```ts
 * import { serveCrcNode } from "./crc_node.ts";
 * await using node = await serveCrcNode({ id: 1, port: 0 });
 * console.assert(node.state().hosts.length === 0);
 * ```
 */
export async function serveCrcNode(options: CrcNodeOptions = {}): Promise<CrcNode> {
  const id = options.id ?? randomCrcId();
  const name = options.name ?? `node-${id}`;
  const info = options.info ?? "";
  // This node's registration as its neighbours get it, encoded once (and a name that does not fit fails here).
  const ownRegistration = encodeCrc({
    kind: "server_registration",
    source: id,
    lastHop: id,
    name,
    info,
  });
  const hosts = new Map<number, Host>();
  const adjacentServers = new Map<number, Link>();
  const adjacentClients = new Map<number, Link>();
  const statusLog: string[] = [];
  const links = new Set<Link>();
  const counters = {
    framesIn: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<CrcKind, number>,
    framesOut: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<CrcKind, number>,
    bytesIn: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<CrcKind, number>,
    bytesOut: Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<CrcKind, number>,
    routingFailures: 0,
    protocolErrors: 0,
    connectionsTotal: 0,
  };

  const transmit = (link: Link, kind: CrcKind, bytes: Uint8Array) => {
    counters.framesOut[kind]++;
    counters.bytesOut[kind] += bytes.length;
    link.connection.send(bytes);
  };
  const send = (link: Link, message: CrcMessage) =>
    transmit(link, message.kind, encodeCrc(message));
  const status = (link: Link, destination: number, code: number, content: string) =>
    send(link, { kind: "status", source: id, destination, code, content });
  const registrationOf = (host: Host): CrcRegistration => ({
    kind: host.kind === "server" ? "server_registration" : "client_registration",
    source: host.id,
    lastHop: id,
    name: host.name,
    info: host.info,
  });
  /** Sends to every adjacent server but the one on `except`, and (when asked) every adjacent client but `skipClient`. */
  const flood = (
    kind: CrcKind,
    bytes: Uint8Array,
    except: Link | undefined,
    clients: boolean,
    skipClient?: number,
  ) => {
    for (const link of adjacentServers.values()) if (link !== except) transmit(link, kind, bytes);
    if (!clients) return;
    for (const [clientId, link] of adjacentClients) {
      if (clientId !== skipClient) transmit(link, kind, bytes);
    }
  };
  const forget = (host: Host) => {
    hosts.delete(host.id);
    const link = adjacentServers.get(host.id) ?? adjacentClients.get(host.id);
    adjacentServers.delete(host.id);
    adjacentClients.delete(host.id);
    if (link && link.owner === host.id) link.owner = undefined;
  };

  const handle = (link: Link, { message: m, bytes }: CrcFrame) => {
    switch (m.kind) {
      case "server_registration": {
        if (m.source === id || hosts.has(m.source)) {
          logger.warning("Refused server registration with duplicate id {source}", {
            source: m.source,
          });
          return status(link, 0, CRC_STATUS.duplicateId, CRC_TEXTS.duplicateServer(m.source));
        }
        const known = [...hosts.values()];
        hosts.set(m.source, {
          id: m.source,
          kind: "server",
          name: m.name,
          info: m.info,
          firstLink: link,
        });
        if (m.lastHop === 0 || m.lastHop === m.source) {
          link.owner = m.source;
          adjacentServers.set(m.source, link);
        }
        logger.info("Server {source} ({name}) registered", { source: m.source, name: m.name });
        if (m.lastHop === 0) {
          transmit(link, "server_registration", ownRegistration);
          for (const host of known) send(link, registrationOf(host));
        }
        return flood(m.kind, encodeCrc({ ...m, lastHop: id }), link, false);
      }
      case "client_registration": {
        if (m.source === id || hosts.has(m.source)) {
          logger.warning("Refused client registration with duplicate id {source}", {
            source: m.source,
          });
          return status(link, 0, CRC_STATUS.duplicateId, CRC_TEXTS.duplicateClient(m.source));
        }
        const known = [...hosts.values()].filter((h) => h.kind === "client");
        hosts.set(m.source, {
          id: m.source,
          kind: "client",
          name: m.name,
          info: m.info,
          firstLink: link,
        });
        logger.info("Client {source} ({name}) registered", { source: m.source, name: m.name });
        if (m.lastHop === 0) {
          link.owner = m.source;
          adjacentClients.set(m.source, link);
          status(link, m.source, CRC_STATUS.welcome, CRC_TEXTS.welcome(m.name));
          for (const host of known) send(link, registrationOf(host));
        }
        return flood(m.kind, encodeCrc({ ...m, lastHop: id }), link, true, m.source);
      }
      case "chat": {
        const target = hosts.get(m.destination);
        if (target) return transmit(target.firstLink, m.kind, bytes);
        counters.routingFailures++;
        logger.info("Chat from {source} to unknown id {destination}", {
          source: m.source,
          destination: m.destination,
        });
        return status(link, m.source, CRC_STATUS.unknownId, CRC_TEXTS.unknownId(m.destination));
      }
      case "status": {
        if (m.destination === id || m.destination === 0) {
          statusLog.push(m.content);
          return;
        }
        const target = hosts.get(m.destination);
        if (target) return transmit(target.firstLink, m.kind, bytes);
        counters.routingFailures++;
        logger.info("Dropped status for unknown id {destination}", { destination: m.destination });
        return;
      }
      case "client_quit": {
        const host = hosts.get(m.source);
        if (!host || host.kind !== "client") return; // unknown: this is what stops the flood
        flood(m.kind, bytes, link, true, m.source);
        forget(host);
        logger.info("Client {source} quit", { source: m.source });
        return;
      }
      case "server_quit": {
        const host = hosts.get(m.source);
        if (!host || host.kind !== "server") return;
        flood(m.kind, bytes, link, false);
        forget(host);
        logger.info("Server {source} is gone", { source: m.source });
        return;
      }
    }
  };

  /** A registered neighbour's link dropped: forget and announce everything behind it. */
  const dropped = (link: Link) => {
    links.delete(link);
    if (link.owner === undefined) return;
    const lost = [...hosts.values()].filter((h) => h.firstLink === link);
    for (const host of lost) forget(host);
    for (const host of lost) {
      if (host.kind === "server") {
        const quit = encodeCrc({
          kind: "server_quit",
          source: host.id,
          replacement: 0,
          content: CRC_TEXTS.connectionLost,
        });
        flood("server_quit", quit, undefined, false);
      } else {
        const quit = encodeCrc({
          kind: "client_quit",
          source: host.id,
          content: CRC_TEXTS.connectionLost,
        });
        flood("client_quit", quit, undefined, true);
      }
    }
    if (lost.length) logger.warning("Link lost: {count} hosts unreachable", { count: lost.length });
  };

  const runLink = async (connection: Connection) => {
    const link: Link = { connection };
    links.add(link);
    counters.connectionsTotal++;
    const decoder = new CrcFrameDecoder({ maxContentBytes: options.maxContentBytes });
    try {
      for await (const chunk of connection.chunks()) {
        let frames: CrcFrame[];
        try {
          frames = decoder.decode(chunk);
        } catch (error) {
          if (!isFrameError(error)) throw error;
          counters.protocolErrors++;
          logger.warning("Protocol error on link from {peer}, closing it: {error}", {
            peer: formatAddr(connection.remoteAddr),
            error: error.message,
          });
          frames = [];
          // Frames decoded before the error in this chunk are lost with the link; that is fine.
          connection.close();
        }
        for (const frame of frames) {
          counters.framesIn[frame.message.kind]++;
          counters.bytesIn[frame.message.kind] += frame.bytes.length;
          handle(link, frame);
        }
        if (connection.closed) break;
      }
    } finally {
      connection.close();
      dropped(link);
    }
  };

  const listener = serveStream(
    { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? CRC_PORT, tls: options.tls },
    runLink,
    { logger, maxQueueBytes: options.maxQueueBytes },
  );
  logger.info("Listening on {addr} as node {id} ({name})", {
    id,
    name,
    addr: formatAddr(listener.addr),
  });

  let outgoing: Promise<void> | undefined;
  let outgoingConnection: Connection | undefined;
  if (options.connectTo) {
    const { hostname, port } = options.connectTo;
    let conn: Deno.Conn;
    try {
      conn = await connectWithTimeout(
        hostname,
        port,
        options.connectTimeoutMs ?? 5000,
        options.connectTls,
      );
    } catch (error) {
      await listener.shutdown();
      throw new Deno.errors.ConnectionRefused(
        `Cannot join the network at ${hostname}:${port}: ${
          error instanceof Error ? error.message : error
        }`,
      );
    }
    outgoingConnection = new Connection(conn, { logger, maxQueueBytes: options.maxQueueBytes });
    outgoingConnection.send(
      encodeCrc({ kind: "server_registration", source: id, lastHop: 0, name, info }),
    );
    counters.framesOut.server_registration++;
    outgoing = runLink(outgoingConnection).catch((error) =>
      logger.error("Link failed: {error}", { error: String(error) })
    );
    logger.info("Joining the network through {host}:{port}", { host: hostname, port });
  }

  const state = (): CrcNodeState => ({
    id,
    name,
    info,
    hosts: [...hosts.values()].map((h) => ({
      id: h.id,
      kind: h.kind,
      name: h.name,
      info: h.info,
      firstLink: h.firstLink.owner ?? 0,
    })),
    adjacentServers: [...adjacentServers.keys()],
    adjacentClients: [...adjacentClients.keys()],
    statusLog: [...statusLog],
  });

  const metrics = (): string => {
    const lines = [
      "# HELP parley_crc_connections Open links of this node.",
      "# TYPE parley_crc_connections gauge",
      `parley_crc_connections ${links.size}`,
      "# HELP parley_crc_connections_total Links opened since start.",
      "# TYPE parley_crc_connections_total counter",
      `parley_crc_connections_total ${counters.connectionsTotal}`,
      "# HELP parley_crc_hosts Hosts this node knows.",
      "# TYPE parley_crc_hosts gauge",
      `parley_crc_hosts{kind="server"} ${
        [...hosts.values()].filter((h) => h.kind === "server").length
      }`,
      `parley_crc_hosts{kind="client"} ${
        [...hosts.values()].filter((h) => h.kind === "client").length
      }`,
    ];
    const family = (metric: string, help: string, values: Record<CrcKind, number>) => {
      lines.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} counter`);
      for (const kind of KINDS) lines.push(`${metric}{type="${kind}"} ${values[kind]}`);
    };
    family("parley_crc_frames_in_total", "Frames received, by type.", counters.framesIn);
    family("parley_crc_frames_out_total", "Frames sent, by type.", counters.framesOut);
    family("parley_crc_bytes_in_total", "Bytes received, by frame type.", counters.bytesIn);
    family("parley_crc_bytes_out_total", "Bytes sent, by frame type.", counters.bytesOut);
    lines.push(
      "# HELP parley_crc_routing_failures_total Chats and statuses for ids this node does not know.",
      "# TYPE parley_crc_routing_failures_total counter",
      `parley_crc_routing_failures_total ${counters.routingFailures}`,
      "# HELP parley_crc_protocol_errors_total Links closed for undecodable input.",
      "# TYPE parley_crc_protocol_errors_total counter",
      `parley_crc_protocol_errors_total ${counters.protocolErrors}`,
    );
    return `${lines.join("\n")}\n`;
  };

  let admin: Deno.HttpServer<Deno.NetAddr> | undefined;
  if (options.admin) {
    admin = Deno.serve({
      hostname: options.admin.hostname,
      port: options.admin.port,
      onListen: () => {},
    }, (request) => {
      const path = new URL(request.url).pathname;
      if (request.method !== "GET") return new Response("method not allowed\n", { status: 405 });
      if (path === "/state") return Response.json(state());
      if (path === "/metrics") {
        return new Response(metrics(), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      }
      return new Response("not found: try GET /state or GET /metrics\n", { status: 404 });
    });
    logger.info("Admin endpoint on {addr}", { addr: formatAddr(admin.addr) });
  }

  let done: Promise<void> | undefined;
  const shutdown = () =>
    done ??= (async () => {
      outgoingConnection?.close();
      await listener.shutdown();
      await outgoing;
      await admin?.shutdown();
    })();
  return {
    id,
    addr: listener.addr,
    adminAddr: admin?.addr,
    finished: listener.finished.then(() => outgoing).then(() => admin?.finished),
    shutdown,
    [Symbol.asyncDispose]: shutdown,
    state,
    metrics,
  };
}

function hostPort(value: string, flag: string): { hostname: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(value);
  if (!m) throw new UsageError(`--${flag} must be HOST:PORT, got '${value}'`);
  return { hostname: m[1].replace(/^\[(.*)\]$/, "$1") || "127.0.0.1", port: portValue(m[2], flag) };
}

/** The command-line interface of `servers/crc_node.ts`. */
export const CRC_NODE_COMMAND: CommandSpec = {
  name: "servers/crc_node.ts",
  usage:
    "[--id ID] [--name NAME] [--port PORT] [--connect-to-host HOST --connect-to-port PORT] [--admin HOST:PORT]",
  summary:
    "Clemson Relay Chat node: joins a tree of servers, knows every host, routes chats hop by hop.",
  flags: {
    id: { type: "string", value: "ID", description: "32-bit id of this node (default: random)" },
    name: {
      type: "string",
      value: "NAME",
      description: "this server's name (default: node-<id>)",
      aliases: ["servername"],
    },
    info: {
      type: "string",
      default: "",
      value: "TEXT",
      description: "information about this server",
    },
    port: {
      type: "string",
      default: String(CRC_PORT),
      value: "PORT",
      description: "port; 0 picks one",
    },
    "connect-to-host": {
      type: "string",
      value: "HOST",
      description: "join the network through the node at this host",
      aliases: ["connect_to_host"],
    },
    "connect-to-port": {
      type: "string",
      value: "PORT",
      description: "... and this port",
      aliases: ["connect_to_port"],
    },
    admin: {
      type: "string",
      value: "HOST:PORT",
      description: "serve GET /state and GET /metrics here",
    },
    "max-content": {
      type: "string",
      default: String(64 * 1024),
      value: "BYTES",
      description: "largest chat/status/quit content",
    },
    "log-file": {
      type: "string",
      value: "FILE",
      description: "also append the log to this file (needs --allow-write)",
    },
    ...TLS_SERVER_FLAGS,
    tls: { ...TLS_CLIENT_FLAGS.tls, description: "join the network (--connect-to-*) with TLS" },
    ca: TLS_CLIENT_FLAGS.ca,
    ...SERVER_FLAGS,
  },
};

/** Runs a CRC node from command-line arguments until SIGINT/SIGTERM. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, CRC_NODE_COMMAND, async ({ values }) => {
    let id: number | undefined;
    if (values.id !== undefined) {
      id = intValue(values.id, "id", 1);
      if (id > 0xffffffff) throw new UsageError(`--id must fit in 32 bits, got '${values.id}'`);
    }
    const joinHost = values["connect-to-host"];
    const joinPort = values["connect-to-port"];
    if (joinHost !== undefined && joinPort === undefined) {
      throw new UsageError("--connect-to-host needs --connect-to-port");
    }
    const options: CrcNodeOptions = {
      ...serverBasics(values),
      id,
      name: values.name === undefined ? undefined : String(values.name),
      info: String(values.info ?? ""),

      port: portValue(values.port),
      connectTo: joinPort === undefined ? undefined : {
        hostname: String(joinHost ?? "127.0.0.1"),
        port: portValue(joinPort, "connect-to-port"),
      },
      admin: values.admin === undefined ? undefined : hostPort(String(values.admin), "admin"),
      maxContentBytes: intValue(values["max-content"], "max-content", 1),
      connectTls: tlsClientOptions(values),
    };
    const bytes = (text: string | undefined) => new TextEncoder().encode(text ?? "").length;
    if (bytes(options.name) > 255) throw new UsageError("--name is at most 255 bytes");
    if (bytes(options.info) > 65535) throw new UsageError("--info is at most 65535 bytes");
    await runServer(values, logger, () => serveCrcNode(options));
  });
}

if (import.meta.main) await main(Deno.args);
