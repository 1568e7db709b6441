/**
 * Clemson Relay Chat node (seed 003, SPEC.md 3.2 and 6.6): servers form a
 * tree, every node knows every host (server or client) and the adjacent link
 * that leads to it, and chats are routed hop by hop along those links.
 *
 * The routing itself is the pure {@link CrcRouter} (`protocols/crc_router.ts`);
 * this module is its I/O shell: sockets, timers, backpressure, the admin
 * endpoint and the command line.
 *
 * ```sh
 * deno run --allow-net servers/crc_node.ts --id 1 --name hub --port 3600
 * deno run --allow-net servers/crc_node.ts --id 2 --name leaf --port 3601 \
 *   --connect-to-host 127.0.0.1 --connect-to-port 3600 --admin 127.0.0.1:9100
 * ```
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  CRC_PORT,
  CRC_STATUS,
  CrcFrameDecoder,
  type CrcKind,
  crcTextProblem,
  encodeCrc,
  randomCrcId,
} from "../protocols/crc.ts";
import {
  CRC_KINDS,
  CRC_MAX_HOSTS,
  type CrcHostView,
  CrcRouter,
  type CrcRouterEvent,
} from "../protocols/crc_router.ts";
import { isFrameError } from "../protocols/errors.ts";
import { Connection, DEFAULT_MAX_QUEUE_BYTES } from "../net/connection.ts";
import { connectWithTimeout, type TlsDialOptions } from "../net/dial.ts";
import { formatAddr, formatHostPort } from "../net/address.ts";
import { DEFAULT_REGISTER_TIMEOUT_MS, FrameReader } from "../net/framing.ts";
import { listenTcp } from "../net/listen.ts";
import { type Server, type ServerLimits, serveStream, type TlsCertificate } from "../net/serve.ts";
import {
  type CommandSpec,
  intValue,
  millisecondsFromSeconds,
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
import { type AdminReply, serveAdmin, textReply } from "./_crc_admin.ts";

/** A host this node knows, as `GET /state` shows it. */
export type CrcHostState = CrcHostView;

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
  /** Status texts addressed to this node (or to 0), oldest first: the newest 1000, each cut to 1 KiB. */
  statusLog: string[];
}

/** Default `--link-high-water`: a server link's queue past it pauses reading from client links. */
export const CRC_LINK_HIGH_WATER_BYTES = 4 * 1024 * 1024;
/** Default `--link-stall-timeout`, ms: a server link that writes nothing for this long is dropped. */
export const CRC_LINK_STALL_MS = 30_000;
/**
 * Options of {@link serveCrcNode}. The shared limits (`maxQueueBytes` for
 * client and unregistered links, `frameTimeoutMs`, `registerTimeoutMs`, default
 * 10 s, `maxPerIp`, ...) are those of every server.
 */
export interface CrcNodeOptions extends ServerLimits {
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
  /** Time allowed to reach `connectTo` and hear its answer, ms (default 5 s). */
  connectTimeoutMs?: number;
  /** Most hosts recorded (default 100000). */
  maxHosts?: number;
  /** A server link's queue past this pauses reading from client links (default 4 MiB). */
  linkHighWaterBytes?: number;
  /** A server link that makes no write progress for this long is dropped, ms (default 30 s). */
  linkStallTimeoutMs?: number;
  /** Speak TLS only on the node's port, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** Reach `connectTo` over TLS (`--tls`, `--ca`). */
  connectTls?: TlsDialOptions;
  /** The admin endpoint closes a connection idle this long, ms (default 10 s, SPEC 6.2). */
  adminIdleMs?: number;
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

/** The node this one tried to join refused it (its id is taken there). */
export class CrcJoinRefusedError extends Deno.errors.ConnectionRefused {
  /** Makes the error; the message ends with the refusal text. */
  constructor(message: string) {
    super(message);
    this.name = "CrcJoinRefusedError";
  }
}

const logger = getLogger(["parley", "crc"]);

interface Link {
  id: number;
  connection: Connection;
  /** Raised queue limit once it is a server link. */
  server: boolean;
  /** Its queue limit is raised by the welcome's client list until that drains. */
  reserved: boolean;
  /** A client link that stopped making progress: not waited for until it drains. */
  stuck: boolean;
  /** When the stall check first saw its queue non-empty (or backed up). */
  pendingSince?: number;
}

type Limits = Required<
  Pick<CrcNodeOptions, "maxQueueBytes" | "linkHighWaterBytes" | "linkStallTimeoutMs">
>;

/**
 * A client link over half its queue limit that made no write progress for
 * this long is no longer waited for: it reads too slowly, its queue may
 * overflow and it is dropped (SPEC conventions).
 */
const CLIENT_STALL_MS = 200;

/** A link's frames are handled for at most about this long before others get a turn. */
const TURN_BUDGET_MS = 1;

/** Links whose queues are past a mark; while any are, readers wait on {@link Backlog.wait}. */
class Backlog {
  readonly links = new Set<Link>();
  #gate?: PromiseWithResolvers<void>;

  /** Resolves when the backlog clears; undefined while it is clear. */
  get wait(): Promise<void> | undefined {
    return this.#gate?.promise;
  }

  /** True when `link` is the first. */
  add(link: Link): boolean {
    if (this.links.has(link)) return false;
    this.links.add(link);
    if (this.links.size > 1) return false;
    this.#gate = Promise.withResolvers();
    return true;
  }

  /** True when that cleared the backlog. */
  delete(link: Link): boolean {
    if (!this.links.delete(link) || this.links.size > 0) return false;
    this.release();
    return true;
  }

  /** Lets every waiting reader go. */
  release(): void {
    this.#gate?.resolve();
    this.#gate = undefined;
  }
}

/**
 * The I/O shell around one {@link CrcRouter}: links, backpressure, stalls.
 *
 * Backpressure (SPEC 6.6): a server link whose queue passes the high-water
 * mark pauses reading from client links until it drains below half; one that
 * makes no progress for the stall timeout is dropped. A client link over half
 * its queue limit that keeps reading pauses reading from every link until it
 * drains below a quarter (so a burst toward a reading client never overflows
 * it); one that makes no progress for {@link CLIENT_STALL_MS} is not waited
 * for, and is dropped if its queue overflows.
 */
class NodeShell {
  readonly router: CrcRouter;
  readonly links = new Map<number, Link>();
  readonly byConnection = new Map<Connection, Link>();
  protocolErrors = 0;
  connectionsTotal = 0;
  /** Server links past the high-water mark: client links are not read. */
  readonly servers = new Backlog();
  /** Reading client links over half their limit: no link is read. */
  readonly clients = new Backlog();
  readonly #serverLinks = new Set<Link>();
  #nextId = 0;
  #limits: Limits;
  #maxContent?: number;
  /** Runs only while a server link has bytes queued or a client is backed up. */
  #stallTimer?: ReturnType<typeof setInterval>;
  #stallEvery: number;
  #stopping = false;
  #probe?: Promise<void>;
  #probeArmedAt = 0;
  /** Waits for the answer of the node this one joins. */
  joinAnswer?: PromiseWithResolvers<void>;

  constructor(router: (shell: NodeShell) => CrcRouter, limits: Limits, maxContent?: number) {
    this.#limits = limits;
    this.#maxContent = maxContent;
    this.router = router(this);
    this.#stallEvery = Math.max(10, Math.min(CLIENT_STALL_MS / 4, limits.linkStallTimeoutMs / 4));
  }

  /** Queues a frame (the router's output). */
  send(id: number, _kind: CrcKind, bytes: Uint8Array): void {
    const link = this.links.get(id);
    if (!link) return;
    const c = link.connection;
    c.send(bytes);
    if (link.server) {
      this.#watchStalls();
      if (c.queuedBytes > this.#limits.linkHighWaterBytes && this.servers.add(link)) {
        logger.info("Server link {peer} is backed up: pausing reads from clients", {
          peer: formatAddr(c.remoteAddr),
        });
      }
    } else if (
      c.queuedBytes > this.#limits.maxQueueBytes / 2 && !link.reserved && !link.stuck && !c.closed
    ) {
      this.clients.add(link);
      this.#watchStalls();
    }
  }

  #watchStalls(): void {
    if (this.#stallTimer !== undefined || this.#stopping) return;
    this.#stallTimer = setInterval(() => this.#checkStalls(), this.#stallEvery);
  }

  /** The welcome's client list may exceed the normal queue limit by its size. */
  reserve(id: number, bytes: number): void {
    const link = this.links.get(id);
    if (!link || bytes <= 0) return;
    link.reserved = true;
    link.connection.maxQueueBytes = this.#limits.maxQueueBytes + bytes;
  }

  /** A write made progress on `connection`. */
  written(connection: Connection): void {
    const link = this.byConnection.get(connection);
    if (!link) return;
    const queued = connection.queuedBytes;
    if (link.reserved && queued <= this.#limits.maxQueueBytes) {
      link.reserved = false;
      if (!link.server) connection.maxQueueBytes = this.#limits.maxQueueBytes;
    }
    if (queued < this.#limits.linkHighWaterBytes / 2) this.#unblockServer(link);
    if (queued < this.#limits.maxQueueBytes / 4) {
      link.stuck = false;
      if (this.clients.delete(link) || !link.server) link.pendingSince = undefined;
    }
  }

  #unblockServer(link: Link): void {
    if (this.servers.delete(link)) logger.info("Server links drained: reading from clients again");
  }

  /** Closes a link the router gave up on. */
  close(id: number, reason: string): void {
    const link = this.links.get(id);
    if (!link) return;
    logger.warning("Closing link {peer}: {reason}", {
      peer: formatAddr(link.connection.remoteAddr),
      reason,
    });
    link.connection.close();
  }

  #checkStalls(): void {
    const now = performance.now();
    let pending = this.clients.links.size > 0;
    for (const link of this.#serverLinks) {
      const c = link.connection;
      if (c.queuedBytes === 0) {
        link.pendingSince = undefined;
        continue;
      }
      pending = true;
      link.pendingSince ??= now;
      if (now - Math.max(c.lastProgress, link.pendingSince) < this.#limits.linkStallTimeoutMs) {
        continue;
      }
      logger.warning("Dropping server link {peer}: no progress for {seconds} s", {
        peer: formatAddr(c.remoteAddr),
        seconds: this.#limits.linkStallTimeoutMs / 1000,
      });
      c.close();
    }
    for (const link of this.clients.links) {
      link.pendingSince ??= now;
      if (now - Math.max(link.connection.lastProgress, link.pendingSince) < CLIENT_STALL_MS) {
        continue;
      }
      link.stuck = true;
      this.clients.delete(link);
    }
    if (!pending) {
      clearInterval(this.#stallTimer);
      this.#stallTimer = undefined;
      this.#stallTimer = undefined;
    }
  }

  /**
   * Fairness: a link whose data keeps arriving would otherwise be read again
   * and again within one event-loop turn (reads complete at once), starving
   * accepts, other links and timers. After every 64 frames (or 16 KiB) a link asks; the first
   * asker arms a zero timer (the probe) and notes the time. If the probe has
   * still not fired 1 ms later, the event loop has not turned: the asker waits
   * for it. An idle loop fires the probe at once, so this costs nothing then.
   */
  #mustYield(): Promise<void> | undefined {
    if (this.#probe === undefined) {
      const probe = Promise.withResolvers<void>();
      this.#probe = probe.promise;
      this.#probeArmedAt = performance.now();
      setTimeout(() => {
        this.#probe = undefined;
        probe.resolve();
      }, 0);
      return undefined;
    }
    return performance.now() - this.#probeArmedAt > TURN_BUDGET_MS ? this.#probe : undefined;
  }

  /**
   * Resolves when `link` may be read again (at once, mostly). Unregistered
   * links are never paused. While a link waits, the node is not reading it, so
   * its frame clock (`--frame-timeout`) is stopped and starts again afterwards.
   */
  async #mayRead(link: Link): Promise<void> {
    const c = link.connection;
    const partial = c.frameStartedAt >= 0;
    while (!this.#stopping && !c.closed) {
      const role = this.router.roleOf(link.id);
      const wait = role === "unowned"
        ? undefined
        : this.clients.wait ?? (role === "client" ? this.servers.wait : undefined);
      if (wait === undefined) break;
      c.frameStartedAt = -1;
      await wait;
    }
    if (partial) c.frameStartedAt = performance.now();
  }

  /** Runs one link until it closes. */
  async run(connection: Connection, join = false): Promise<void> {
    const link: Link = {
      id: ++this.#nextId,
      connection,
      server: false,
      reserved: false,
      stuck: false,
    };
    this.links.set(link.id, link);
    this.byConnection.set(connection, link);
    this.connectionsTotal++;
    connection.onWritten = (c) => this.written(c);
    this.router.open(link.id, { join });
    // A chat's content is decoded only if something reads it (routing does not).
    const decoder = new CrcFrameDecoder({
      maxContentBytes: this.#maxContent,
      lazyChatContent: true,
    });
    try {
      // A read's frames are routed before anything is awaited (so every queue flushes once), unless
      // the link has kept the event loop for 1 ms.
      // A FrameReader, not the receiveFrameBatches generator: one promise per read, not four.
      const reader = new FrameReader(connection, decoder);
      let work = 0;
      for (let frames; (frames = await reader.next());) {
        for (const frame of frames) {
          if (connection.closed) break;
          this.router.receive(link.id, frame);
          work += 1 + (frame.bytes.length >> 8);
          if (work < 64) continue;
          // Only a busy link asks (64 frames or 16 KiB since it last did): ordinary traffic arms few timers.
          work = 0;
          const turn = this.#mustYield();
          if (turn) await turn;
        }
        if (this.clients.wait || this.servers.wait) await this.#mayRead(link);
      }
    } catch (error) {
      // Only the link this node dialled has no read policy: its framing errors arrive here.
      if (!isFrameError(error)) throw error;
      this.frameError(error, connection);
    } finally {
      connection.close();
      this.links.delete(link.id);
      this.byConnection.delete(connection);
      this.#serverLinks.delete(link);
      this.#unblockServer(link);
      this.clients.delete(link);
      this.router.close(link.id);
    }
  }

  /** Counts and logs a link closed for undecodable input. */
  frameError(error: Error, connection: Connection): undefined {
    this.protocolErrors++;
    logger.warning("Protocol error on link from {peer}, closing it: {error}", {
      peer: formatAddr(connection.remoteAddr),
      error: error.message,
    });
    return undefined;
  }

  /**
   * A registered link is no longer on the registration clock; a server's link
   * gets the raised queue limit and the stall watch (told once here, not asked on every send).
   */
  registered(id: number, kind: "server" | "client"): void {
    const link = this.links.get(id);
    if (!link) return;
    link.connection.registered();
    if (kind === "server" && !link.server) {
      link.server = true;
      link.connection.maxQueueBytes = Infinity;
      this.#serverLinks.add(link);
    }
  }

  /** Stops the timers and lets paused readers go. */
  stop(): void {
    this.#stopping = true;
    clearInterval(this.#stallTimer);
    this.#stallTimer = undefined;
    this.servers.release();
    this.clients.release();
  }
}

function logEvent(shell: NodeShell, event: CrcRouterEvent): void {
  switch (event.type) {
    case "registered":
      if (event.link !== undefined) {
        shell.registered(event.link, event.kind);
        logger.info(`${event.kind === "server" ? "Server" : "Client"} {id} ({name}) registered`, {
          id: event.id,
          name: event.name,
        });
      } else {
        logger.debug("Learned {kind} {id} ({name})", event);
      }
      return;
    case "refused":
      return logger.warning("Refused {kind} registration {id}: {reason}", event);
    case "quit":
      return logger.info(`${event.kind === "server" ? "Server" : "Client"} {id} quit`, event);
    case "lost":
      if (event.hosts > 0) logger.warning("Link lost: {hosts} hosts unreachable", event);
      return;
    case "spoofed":
      return logger.debug("Dropped a spoofed {kind} from {source}", event);
    case "closed":
      return;
    case "joined":
      shell.joinAnswer?.resolve();
      return logger.info("Joined the network through {id} ({name})", event);
    case "join_refused":
      shell.joinAnswer?.reject(new CrcJoinRefusedError(event.text));
      return;
  }
}

/**
 * Starts a CRC node; with `connectTo`, it joins that node's network first and
 * fails if it cannot reach it or is refused there ({@link CrcJoinRefusedError}).
 * Nothing opened before a failure stays open.
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
  if (!Number.isInteger(id) || id < 1 || id > 0xffffffff) {
    throw new RangeError(`a CRC id is 1 to 4294967295 (0 is reserved), got ${id}`);
  }
  const name = options.name ?? `node-${id}`;
  const info = options.info ?? "";
  for (const [field, text, max] of [["name", name, 255], ["info", info, 65535]] as const) {
    const problem = crcTextProblem(text, max);
    if (problem) throw new RangeError(`the node's ${field} ${problem}`);
  }
  const shell = makeShell(options, id, name, info);
  const connectionOptions = { logger, maxQueueBytes: options.maxQueueBytes };
  let listener: Server | undefined;
  let admin: Server | undefined;
  let outgoing: Promise<void> | undefined;
  let done: Promise<void> | undefined;
  const shutdown = () =>
    done ??= (async () => {
      shell.stop();
      await listener?.shutdown();
      for (const link of [...shell.links.values()]) link.connection.close();
      await outgoing;
      await admin?.shutdown();
    })();
  try {
    listener = listenNode(options, shell);
    logger.info("Listening on {addr} as node {id} ({name})", {
      id,
      name,
      addr: formatAddr(listener.addr),
    });
    if (options.admin) admin = openAdmin(options.admin, shell, options.adminIdleMs);
    if (options.connectTo) {
      const dial = {
        ...connectionOptions,
        timeoutMs: options.connectTimeoutMs,
        tls: options.connectTls,
      };
      outgoing = (await join(shell, options.connectTo, dial)).task;
    }
  } catch (error) {
    await shutdown();
    throw error;
  }
  return {
    id,
    addr: listener.addr,
    adminAddr: admin?.addr as Deno.NetAddr | undefined,
    finished: listener.finished.then(() => outgoing).then(() => admin?.finished),
    shutdown,
    [Symbol.asyncDispose]: shutdown,
    state: () => stateOf(shell),
    metrics: () => metricsText(shell),
  };
}

/** The router and its shell, wired together. */
function makeShell(options: CrcNodeOptions, id: number, name: string, info: string): NodeShell {
  return new NodeShell(
    (out) =>
      new CrcRouter({ id, name, info, maxHosts: options.maxHosts }, {
        send: (link, kind, bytes) => out.send(link, kind, bytes),
        reserve: (link, bytes) => out.reserve(link, bytes),
        close: (link, reason) => out.close(link, reason),
        event: (event) => logEvent(out, event),
      }),
    {
      maxQueueBytes: options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES,
      linkHighWaterBytes: options.linkHighWaterBytes ?? CRC_LINK_HIGH_WATER_BYTES,
      linkStallTimeoutMs: options.linkStallTimeoutMs ?? CRC_LINK_STALL_MS,
    },
    options.maxContentBytes,
  );
}

/** The node's port: every accepted link runs in the shell, under the shared limits. */
function listenNode(options: CrcNodeOptions, shell: NodeShell): Server {
  return serveStream(
    { hostname: options.hostname ?? "127.0.0.1", port: options.port ?? CRC_PORT, tls: options.tls },
    (connection) => shell.run(connection),
    {
      ...options,
      logger,
      registerTimeoutMs: options.registerTimeoutMs ?? DEFAULT_REGISTER_TIMEOUT_MS,
      onFrameError: (error, connection) => shell.frameError(error, connection),
      // Too many connections: a refusal status (code 2, as for a taken id) addressed to 0.
      refuse: (text) =>
        encodeCrc({
          kind: "status",
          source: shell.router.id,
          destination: 0,
          code: CRC_STATUS.duplicateId,
          content: text,
        }),
    },
  );
}

/** Dials the node to join, registers, and waits for its answer; resolves with the link's task. */
async function join(
  shell: NodeShell,
  to: { hostname: string; port: number },
  dial: { logger: typeof logger; maxQueueBytes?: number; timeoutMs?: number; tls?: TlsDialOptions },
): Promise<{ task: Promise<void> }> {
  const where = formatHostPort(to.hostname, to.port);
  const timeoutMs = dial.timeoutMs ?? 5000;
  let conn: Deno.Conn;
  try {
    conn = await connectWithTimeout(to.hostname, to.port, timeoutMs, dial.tls);
  } catch (error) {
    throw new Deno.errors.ConnectionRefused(
      `Cannot join the network at ${where}: ${error instanceof Error ? error.message : error}`,
    );
  }
  logger.info("Joining the network through {where}", { where });
  const connection = new Connection(conn, dial);
  shell.joinAnswer = Promise.withResolvers();
  const task = shell.run(connection, true).catch((error) =>
    logger.error("Link failed: {error}", { error: String(error) })
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      shell.joinAnswer.promise,
      task.then(() => {
        throw new Deno.errors.ConnectionRefused(
          `Cannot join the network at ${where}: the connection closed before an answer`,
        );
      }),
      new Promise((_, reject) =>
        timer = setTimeout(
          () =>
            reject(
              new Deno.errors.TimedOut(`Cannot join the network at ${where}: no answer in time`),
            ),
          timeoutMs,
        )
      ),
    ]);
  } catch (error) {
    connection.close();
    await task;
    if (error instanceof CrcJoinRefusedError) {
      throw new CrcJoinRefusedError(`The network at ${where} refused this node: ${error.message}`);
    }
    throw error;
  } finally {
    clearTimeout(timer);
    shell.joinAnswer = undefined;
  }
  return { task };
}

function openAdmin(
  at: { hostname: string; port: number },
  shell: NodeShell,
  idleMs?: number,
): Server {
  const listener = listenTcp(at); // a failure is a one-line ListenError (SPEC 6.7)
  return serveAdmin(listener, (_method, url) => adminRoute(shell, url), { logger, idleMs });
}

function adminRoute(shell: NodeShell, url: URL): AdminReply {
  if (url.pathname === "/state") {
    const from = Number(url.searchParams.get("from") ?? 0);
    const limit = Number(url.searchParams.get("limit") ?? Infinity);
    if (!(Number.isInteger(from) && from >= 0 && limit >= 0)) {
      return textReply(400, "from and limit are whole numbers\n");
    }
    return { status: 200, type: "application/json", body: stateJson(shell, from, limit) };
  }
  if (url.pathname === "/metrics") {
    return { status: 200, type: "text/plain; version=0.0.4", body: [metricsText(shell)] };
  }
  return textReply(404, "not found: try GET /state or GET /metrics\n");
}

function stateOf(shell: NodeShell): CrcNodeState {
  const r = shell.router;
  return {
    id: r.id,
    name: r.name,
    info: r.info,
    hosts: r.hosts(),
    adjacentServers: r.adjacentServers(),
    adjacentClients: r.adjacentClients(),
    statusLog: r.statusLog(),
  };
}

/**
 * `GET /state` as pieces of JSON, host by host: a large state is never built
 * whole. `?from=N&limit=M` pages the hosts (the rest is always whole: the
 * status log is at most 1000 entries of at most 1 KiB).
 */
function* stateJson(shell: NodeShell, from = 0, limit = Infinity): Generator<string> {
  const r = shell.router;
  const s = JSON.stringify;
  yield `{"id":${r.id},"name":${s(r.name)},"info":${s(r.info)},"hosts":[`;
  let index = 0;
  for (const host of r.eachHost()) {
    if (index >= from + limit) break;
    if (index++ >= from) yield (index - 1 > from ? "," : "") + s(host);
  }
  yield `],"adjacentServers":${s(r.adjacentServers())},"adjacentClients":${
    s(r.adjacentClients())
  },"statusLog":[`;
  let first = true;
  for (const text of r.statusLog()) {
    yield (first ? "" : ",") + s(text);
    first = false;
  }
  yield "]}";
}

function metricsText(shell: NodeShell): string {
  const r = shell.router;
  const c = r.counters;
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, ...values: string[]) =>
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...values);
  metric(
    "parley_crc_connections",
    "gauge",
    "Open links of this node.",
    `parley_crc_connections ${shell.links.size}`,
  );
  metric(
    "parley_crc_connections_total",
    "counter",
    "Links opened since start.",
    `parley_crc_connections_total ${shell.connectionsTotal}`,
  );
  metric(
    "parley_crc_hosts",
    "gauge",
    "Hosts this node knows.",
    `parley_crc_hosts{kind="server"} ${r.serverCount}`,
    `parley_crc_hosts{kind="client"} ${r.hostCount - r.serverCount}`,
  );
  const family = (name: string, help: string, values: Record<CrcKind, number>) =>
    metric(name, "counter", help, ...CRC_KINDS.map((k) => `${name}{type="${k}"} ${values[k]}`));
  family("parley_crc_frames_in_total", "Frames received, by type.", c.framesIn);
  family("parley_crc_frames_out_total", "Frames sent, by type.", c.framesOut);
  family("parley_crc_bytes_in_total", "Bytes received, by frame type.", c.bytesIn);
  family("parley_crc_bytes_out_total", "Bytes sent, by frame type.", c.bytesOut);
  const counter = (name: string, help: string, value: number) =>
    metric(name, "counter", help, `${name} ${value}`);
  counter(
    "parley_crc_routing_failures_total",
    "Chats and statuses for ids this node does not know.",
    c.routingFailures,
  );
  counter(
    "parley_crc_protocol_errors_total",
    "Links closed for undecodable input.",
    shell.protocolErrors,
  );
  counter(
    "parley_crc_spoofed_frames_total",
    "Frames dropped because a server link spoke for a host that is not behind it.",
    c.spoofedFrames,
  );
  counter(
    "parley_crc_link_rule_violations_total",
    "Links closed for a frame their owner may not send.",
    c.ruleViolations,
  );
  counter(
    "parley_crc_hosts_refused_total",
    "Registrations refused at --max-hosts.",
    c.hostsRefused,
  );
  metric(
    "parley_crc_client_reads_paused",
    "gauge",
    "1 while a backed-up server link pauses reading from client links.",
    `parley_crc_client_reads_paused ${shell.servers.links.size > 0 ? 1 : 0}`,
  );
  return `${lines.join("\n")}\n`;
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
    "max-hosts": {
      type: "string",
      default: String(CRC_MAX_HOSTS),
      value: "N",
      description: "most hosts this node records; more registrations are refused",
    },
    "link-high-water": {
      type: "string",
      default: String(CRC_LINK_HIGH_WATER_BYTES),
      value: "BYTES",
      description: "a server link queue past this pauses reading from clients until half drains",
    },
    "link-stall-timeout": {
      type: "string",
      default: String(CRC_LINK_STALL_MS / 1000),
      value: "SECONDS",
      description: "drop a server link whose queue makes no progress for this long",
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
      maxHosts: intValue(values["max-hosts"], "max-hosts", 1),
      linkHighWaterBytes: intValue(values["link-high-water"], "link-high-water", 1),
      linkStallTimeoutMs: millisecondsFromSeconds(
        values["link-stall-timeout"],
        "link-stall-timeout",
      ),
      connectTls: tlsClientOptions(values),
    };
    for (
      const [flag, text, max] of [["name", options.name, 255], [
        "info",
        options.info,
        65535,
      ]] as const
    ) {
      const problem = text === undefined ? undefined : crcTextProblem(text, max);
      if (problem) throw new UsageError(`--${flag} ${problem}`);
    }
    await runServer(values, logger, () => serveCrcNode(options));
  });
}

if (import.meta.main) await main(Deno.args);
