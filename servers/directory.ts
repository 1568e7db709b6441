/**
 * eurechat directory server (seed 000, SPEC.md 1.2): peers log in, bind the
 * address where they can be reached, and look each other up. A liveness
 * checker pings every bound peer and deregisters the ones that do not answer.
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-write servers/directory.ts            # port 8888
 * deno run --allow-read --allow-write servers/directory.ts adduser NAME           # closed sign-up
 * ```
 *
 * @module
 */

import { readPassword } from "../cli/terminal.ts";
import { DIRECTORY_PORT, DIRECTORY_TEXTS, directoryNameProblem } from "../protocols/eurechat.ts";
import { getLogger } from "@logtape/logtape";
import { encodeEurechat, EurechatDecoder } from "../protocols/eurechat.ts";
import { Connection } from "../net/connection.ts";
import { connectWithTimeout, type TlsDialOptions } from "../net/dial.ts";
import { CidrSet, formatAddr, peerKey } from "../net/address.ts";
import { receiveFrames } from "../net/framing.ts";
import {
  DEFAULT_EXEMPT,
  type Server,
  type ServerLimits,
  serveStream,
  type TlsCertificate,
} from "../net/serve.ts";
import { DEFAULT_REGISTER_TIMEOUT_MS } from "../net/framing.ts";
import {
  AccountStore,
  DEFAULT_HASH_CONCURRENCY,
  DEFAULT_HASH_COST,
  DEFAULT_HASH_QUEUE,
  HashQueue,
  HashQueueFullError,
  LoginThrottle,
  RateLimiter,
} from "./_accounts.ts";
import { type Binding, DirectoryCore, type LoginOutcome } from "./_directory_session.ts";
import {
  choiceValue,
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

/** Default database file. */
export const DIRECTORY_DB = "./parley-directory.db";

export type { Binding } from "./_directory_session.ts";

/**
 * Options of {@link serveDirectory}. The shared limits ({@link ServerLimits}:
 * `--max-per-ip`, `--exempt`, `--frame-timeout`, `--register-timeout`, ...)
 * apply as in every server; `exempt` also spares those addresses the
 * sign-up limit.
 */
export interface DirectoryOptions extends ServerLimits {
  /** Address to listen on; default `127.0.0.1`. */
  hostname?: string;
  /** Port; default 8888, 0 picks a free one. */
  port?: number;
  /** SQLite file of accounts; default `./parley-directory.db`, `:memory:` allowed. */
  db?: string;
  /** `open` (default): the first login of an unknown name creates it. `closed`: admin-made accounts only. */
  signup?: "open" | "closed";
  /** scrypt cost as log2 N (default 15). */
  hashCost?: number;
  /** Password hashes computed at once (default 4). */
  hashConcurrency?: number;
  /** Hashes that may wait for a turn; past it, "server busy" (default 64). */
  hashQueue?: number;
  /** Failed logins of one name from one address before refusing that pair (default 5). */
  maxLoginFailures?: number;
  /** Failed logins from one address, any names, before refusing it (default 20). */
  maxAddressFailures?: number;
  /** How long failures count and a lockout lasts, ms (default 60 s). */
  loginLockoutMs?: number;
  /** New accounts per address per minute with open sign-up (default 3). */
  signupsPerMinute?: number;
  /** Most users bound at once (default 10000). */
  maxBound?: number;
  /** Idle session timeout, ms (default 30 s; 0 disables). */
  idleTimeoutMs?: number;
  /** Time allowed for the BIND port test, ms (default 2 s). */
  bindTimeoutMs?: number;
  /** Let peers bind any address, not only the one they connect from (default false). */
  allowAnyBind?: boolean;
  /** Time between liveness sweeps, ms (default 10 s; 0 disables). */
  livenessIntervalMs?: number;
  /** Time a peer has to answer PING with PONG, ms (default 5 s). */
  livenessTimeoutMs?: number;
  /** Peers checked at once (default 128). */
  livenessConcurrency?: number;
  /** Limits of the frame decoder. */
  maxHeaderBytes?: number;
  /** Limits of the frame decoder. */
  maxPayloadBytes?: number;
  /** Speak TLS only, with this certificate (`--tls-cert`, `--tls-key`). */
  tls?: TlsCertificate;
  /** Dial bound peers (liveness PING, BIND port test) with TLS (`--tls`, `--ca`). */
  peerTls?: TlsDialOptions;
}

/** A running directory: a {@link Server} plus its bindings and the liveness sweep. */
export interface DirectoryServer extends Server {
  /** Current bindings, in registration order. */
  readonly bindings: ReadonlyMap<string, Binding>;
  /** Runs one liveness sweep now; resolves with the names deregistered. */
  checkLiveness(): Promise<string[]>;
}

const logger = getLogger(["parley", "directory"]);

/** Messages a session may hold while it waits for a hash or a port test before reading pauses. */
const MAX_BACKLOG = 16;

const err = (text: string) => encodeEurechat("ERR", [], text);

async function loginOutcome(
  accounts: AccountStore,
  action: { name: string; password: string; create: boolean },
  signal: AbortSignal,
): Promise<LoginOutcome> {
  try {
    return await accounts.login(action.name, action.password, action.create, signal)
      ? "ok"
      : "failed";
  } catch (error) {
    if (error instanceof HashQueueFullError) return "busy";
    if (signal.aborted) return "gone";
    logger.error("Login of {user} failed: {error}", { user: action.name, error: String(error) });
    return "error";
  }
}

async function portAnswers(
  addr: string,
  port: number,
  timeoutMs: number,
  tls?: TlsDialOptions,
): Promise<boolean> {
  try {
    (await connectWithTimeout(addr, port, timeoutMs, tls)).close();
    return true;
  } catch (error) {
    logger.info("BIND port test of {addr}:{port} failed: {error}", {
      addr,
      port,
      error: String(error),
    });
    return false;
  }
}

/** Everything one connection's I/O shell needs. */
interface ShellContext {
  core: DirectoryCore;
  accounts: AccountStore;
  options: DirectoryOptions;
}

/** The I/O shell of one session: reads messages into it and performs what it asks. */
async function runSession(connection: Connection, context: ShellContext): Promise<void> {
  const { options } = context;
  const hangUp = new AbortController();
  let pending: Promise<void> = Promise.resolve();
  const remote = connection.remoteAddr;
  const session = context.core.open({
    address: "hostname" in remote ? peerKey(remote.hostname) : "",
    label: formatAddr(remote),
  }, (action) => {
    switch (action.kind) {
      case "reply":
        connection.send(encodeEurechat(action.type, [], action.text));
        break;
      case "close":
        void connection.end();
        break;
      case "registered":
        connection.registered();
        break;
      case "login":
        pending = loginOutcome(context.accounts, action, hangUp.signal)
          .then((outcome) => session.loginDone(outcome));
        break;
      case "probe":
        pending = portAnswers(
          action.addr,
          action.port,
          options.bindTimeoutMs ?? 2000,
          options.peerTls,
        )
          .then((ok) => session.probeDone(ok));
        break;
    }
  });
  const decoder = new EurechatDecoder({
    maxHeaderBytes: options.maxHeaderBytes,
    maxPayloadBytes: options.maxPayloadBytes,
  });
  try {
    // Framing errors, --frame-timeout, --register-timeout and --idle-timeout are the read path's.
    for await (const message of receiveFrames(connection, decoder)) {
      session.receive(message);
      if (session.closed) break;
      while (session.backlog >= MAX_BACKLOG && session.busy) await pending;
    }
  } catch (error) {
    logger.error("Session {peer} failed: {error}", {
      peer: formatAddr(remote),
      error: String(error),
    });
    session.failure();
  } finally {
    // The peer is gone or the session is over: a hash still waiting in the queue is never computed.
    hangUp.abort();
    for (let last; last !== pending;) await (last = pending);
    session.end();
  }
}

/**
 * Starts a directory server. If it cannot listen (a busy port, a bad host),
 * the database it opened is closed again before the error is thrown.
 *
 * @example
 * ```ts
 * import { serveDirectory } from "./directory.ts";
 * await using directory = serveDirectory({ port: 0, db: ":memory:", livenessIntervalMs: 0 });
 * console.assert(directory.bindings.size === 0);
 * ```
 */
export function serveDirectory(options: DirectoryOptions = {}): DirectoryServer {
  const context = directoryContext(options);
  let server: Server;
  try {
    server = serveStream(
      {
        hostname: options.hostname ?? "127.0.0.1",
        port: options.port ?? DIRECTORY_PORT,
        tls: options.tls,
      },
      (connection) => runSession(connection, context),
      {
        logger,
        maxQueueBytes: options.maxQueueBytes,
        frameTimeoutMs: options.frameTimeoutMs,
        maxPerIp: options.maxPerIp,
        exempt: options.exempt,
        maxConnections: options.maxConnections,
        registerTimeoutMs: options.registerTimeoutMs ?? DEFAULT_REGISTER_TIMEOUT_MS,
        idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
        refuse: (text) => err(text),
        onFrameError: (error) => err(error.message),
        onRegisterTimeout: () => err(DIRECTORY_TEXTS.registerTimeout),
        onIdle: () => err(DIRECTORY_TEXTS.idle),
        farewell: (connection) => connection.send(err(DIRECTORY_TEXTS.shuttingDown)),
        onClosed: () => context.accounts.close(),
      },
    );
  } catch (error) {
    context.accounts.close();
    throw error;
  }
  context.core.ownPorts.add(portOf(server.addr));
  const liveness = startLiveness(context.core.bindings, options);
  const shutdown = async () => {
    liveness.stop();
    await server.shutdown();
    await liveness.sweeping();
  };
  logger.info("Listening on {addr}", { addr: formatAddr(server.addr) });
  return {
    addr: server.addr,
    finished: server.finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
    bindings: context.core.bindings,
    checkLiveness: liveness.check,
  };
}

function portOf(addr: Deno.Addr): number {
  return "port" in addr ? addr.port : 0;
}

/** Opens the account store and makes the shared session state. */
function directoryContext(options: DirectoryOptions): ShellContext {
  const exempt = CidrSet.parse(options.exempt ?? DEFAULT_EXEMPT);
  const accounts = new AccountStore(options.db ?? DIRECTORY_DB, {
    cost: options.hashCost ?? DEFAULT_HASH_COST,
    queue: new HashQueue({
      concurrency: options.hashConcurrency ?? DEFAULT_HASH_CONCURRENCY,
      maxWaiting: options.hashQueue ?? DEFAULT_HASH_QUEUE,
    }),
  });
  const core = new DirectoryCore({
    throttle: new LoginThrottle({
      maxFailures: options.maxLoginFailures ?? 5,
      maxAddressFailures: options.maxAddressFailures ?? 20,
      windowMs: options.loginLockoutMs ?? 60_000,
    }),
    signups: new RateLimiter({ max: options.signupsPerMinute ?? 3, windowMs: 60_000 }),
    accountExists: (name) => accounts.has(name),
    signup: options.signup ?? "open",
    isExempt: (address) => exempt.has(address),
    maxBound: options.maxBound ?? 10_000,
    allowAnyBind: options.allowAnyBind ?? false,
  });
  return { core, accounts, options };
}

/** The liveness checker: every interval, PING each bound peer and deregister those that fail. */
function startLiveness(bindings: Map<string, Binding>, options: DirectoryOptions) {
  const timeoutMs = options.livenessTimeoutMs ?? 5000;
  const concurrency = options.livenessConcurrency ?? 128;
  const check = async (): Promise<string[]> => {
    const snapshot = [...bindings];
    const removed: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < snapshot.length) {
        const [name, binding] = snapshot[next++];
        const alive = await pingPeer(binding.addr, binding.port, timeoutMs, options.peerTls);
        if (!alive.ok && bindings.get(name) === binding) {
          bindings.delete(name);
          removed.push(name);
          logger.warning("Deregistered {user} at {addr}:{port}: {reason}", {
            user: name,
            addr: binding.addr,
            port: binding.port,
            reason: alive.reason,
          });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, snapshot.length) }, worker));
    return removed;
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sweeping: Promise<unknown> | undefined;
  let stopped = false;
  const interval = options.livenessIntervalMs ?? 10_000;
  const schedule = () => {
    if (stopped || interval <= 0) return;
    timer = setTimeout(() => {
      sweeping = check().catch((error) =>
        logger.error("Liveness sweep failed: {error}", { error: String(error) })
      ).finally(schedule);
    }, interval);
  };
  schedule();
  return {
    check,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
    sweeping: async () => await sweeping,
  };
}

/**
 * Connects to a peer (with TLS when `tls` is given: `--tls`, `--ca`), sends `PING 0\n` and waits
 * for a `PONG`, all within `timeoutMs`.
 *
 * @example
 * ```ts
 * import { pingPeer } from "./directory.ts";
 * const result = await pingPeer("127.0.0.1", 1, 200);
 * console.assert(!result.ok);
 * ```
 */
export async function pingPeer(
  addr: string,
  port: number,
  timeoutMs: number,
  tls?: TlsDialOptions,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const deadline = performance.now() + timeoutMs;
  let connection: Connection | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  try {
    const open = connection = new Connection(await connectWithTimeout(addr, port, timeoutMs, tls), {
      logger,
    });
    // One deadline for the whole check: closing the socket ends a pending write or read.
    timer = setTimeout(() => {
      timedOut = true;
      open.close();
    }, Math.max(1, deadline - performance.now()));
    open.send(encodeEurechat("PING"));
    for await (const reply of receiveFrames(open, new EurechatDecoder())) {
      return reply.type === "PONG" ? { ok: true } : { ok: false, reason: `answered ${reply.type}` };
    }
    return { ok: false, reason: timedOut ? "no PONG in time" : "closed without PONG" };
  } catch (error) {
    return { ok: false, reason: timedOut ? "no PONG in time" : String(error) };
  } finally {
    clearTimeout(timer);
    connection?.close();
  }
}

/** The command-line interface of `servers/directory.ts`. */
export const DIRECTORY_COMMAND: CommandSpec = {
  name: "servers/directory.ts",
  usage:
    "[--port PORT] [--db FILE] [--signup open|closed] ...\n       servers/directory.ts adduser NAME | deluser NAME [--db FILE]",
  summary:
    "eurechat directory server: USER/PASS login, BIND, QUERY, LEAVE, and a liveness checker that PINGs every bound peer.",
  flags: {
    port: {
      type: "string",
      default: String(DIRECTORY_PORT),
      value: "PORT",
      description: "port; 0 picks one",
    },
    db: {
      type: "string",
      default: DIRECTORY_DB,
      value: "FILE",
      description: "SQLite file of accounts (:memory: allowed)",
    },
    signup: {
      type: "string",
      default: "open",
      value: "MODE",
      description: "open (first login creates the account) | closed",
    },
    "hash-cost": {
      type: "string",
      default: String(DEFAULT_HASH_COST),
      value: "N",
      description: "scrypt cost, log2 of N",
    },
    "hash-concurrency": {
      type: "string",
      default: String(DEFAULT_HASH_CONCURRENCY),
      value: "N",
      description: "password hashes computed at once",
    },
    "hash-queue": {
      type: "string",
      default: String(DEFAULT_HASH_QUEUE),
      value: "N",
      description: "hashes that may wait their turn; more get 'server busy'",
    },
    "max-login-failures": {
      type: "string",
      default: "5",
      value: "N",
      description: "failed logins of one name from one address before refusing them",
    },
    "max-address-failures": {
      type: "string",
      default: "20",
      value: "N",
      description: "failed logins from one address (any names) before refusing it",
    },
    "login-lockout": {
      type: "string",
      default: "60",
      value: "SECONDS",
      description: "how long failures count and a lockout lasts",
    },
    "signups-per-minute": {
      type: "string",
      default: "3",
      value: "N",
      description: "new accounts per address per minute with --signup open (--exempt not counted)",
    },
    "max-bound": {
      type: "string",
      default: "10000",
      value: "N",
      description: "most users bound at once",
    },
    "idle-timeout": {
      type: "string",
      default: "30",
      value: "SECONDS",
      description: "close a session idle this long (0: never)",
    },
    "bind-timeout": {
      type: "string",
      default: "2",
      value: "SECONDS",
      description: "time allowed for the BIND port test",
    },
    "allow-any-bind": {
      type: "boolean",
      description: "let peers bind addresses other than the one they connect from",
    },
    "liveness-interval": {
      type: "string",
      default: "10",
      value: "SECONDS",
      description: "time between liveness sweeps (0: off)",
    },
    "liveness-timeout": {
      type: "string",
      default: "5",
      value: "SECONDS",
      description: "time a peer has to answer PING",
    },
    "liveness-concurrency": {
      type: "string",
      default: "128",
      value: "N",
      description: "peers checked at once",
    },
    "max-header": {
      type: "string",
      default: "1024",
      value: "BYTES",
      description: "longest header line",
    },
    "max-payload": {
      type: "string",
      default: "65536",
      value: "BYTES",
      description: "largest payload",
    },
    ...TLS_SERVER_FLAGS,
    tls: {
      ...TLS_CLIENT_FLAGS.tls,
      description: "PING bound peers (and test BIND ports) with TLS: for peers with --tls-cert",
    },
    ca: TLS_CLIENT_FLAGS.ca,
    ...SERVER_FLAGS,
    exempt: {
      ...SERVER_FLAGS.exempt,
      description:
        "addresses --max-per-ip and --signups-per-minute do not count ('' exempts nothing)",
    },
    "register-timeout": {
      ...SERVER_FLAGS["register-timeout"],
      description: "USER and PASS must succeed within this time (0: no limit)",
    },
  },
  epilog:
    "Passwords for adduser are read without echo from a terminal, or as the first line of stdin.",
};

function mayUseFile(path: string): boolean {
  return Deno.permissions.querySync({ name: "read", path }).state === "granted" &&
    Deno.permissions.querySync({ name: "write", path }).state === "granted";
}

async function admin(command: string, name: string | undefined, values: Record<string, unknown>) {
  const problem = name === undefined ? "it is missing" : directoryNameProblem(name);
  if (name === undefined || (problem && command === "adduser")) {
    throw new UsageError(`${command} needs a valid NAME: ${problem}`);
  }
  const store = new AccountStore(String(values.db), {
    cost: intValue(values["hash-cost"], "hash-cost", 1),
  });
  try {
    if (command === "adduser") {
      const password = await readPassword(`Password for ${name}: `);
      if (!/^\S+$/.test(password)) {
        throw new UsageError("the password must be one word with no spaces");
      }
      if (!(await store.add(name, password))) {
        console.error(`User ${name} already exists`);
        Deno.exitCode = 1;
      } else console.log(`Added user ${name}`);
    } else {
      if (!store.remove(name)) {
        console.error(`No user ${name}`);
        Deno.exitCode = 1;
      } else console.log(`Deleted user ${name}`);
    }
  } finally {
    store.close();
  }
}

/** Runs the directory server (or an admin command) from command-line arguments. */
export async function main(args: readonly string[]): Promise<void> {
  await runCommand(args, DIRECTORY_COMMAND, async ({ values, positionals }) => {
    if (positionals.length > 0) {
      const [command, name, ...rest] = positionals;
      if ((command !== "adduser" && command !== "deluser") || rest.length) {
        throw new UsageError(`unknown command '${positionals.join(" ")}'`);
      }
      return await admin(command, name, values);
    }
    const options: DirectoryOptions = {
      ...serverBasics(values),
      port: portValue(values.port),
      db: String(values.db),
      signup: choiceValue(values.signup, "signup", ["open", "closed"] as const),
      hashCost: intValue(values["hash-cost"], "hash-cost", 1),
      hashConcurrency: intValue(values["hash-concurrency"], "hash-concurrency", 1),
      hashQueue: intValue(values["hash-queue"], "hash-queue", 0),
      maxLoginFailures: intValue(values["max-login-failures"], "max-login-failures", 1),
      maxAddressFailures: intValue(values["max-address-failures"], "max-address-failures", 1),
      signupsPerMinute: intValue(values["signups-per-minute"], "signups-per-minute", 0),
      maxBound: intValue(values["max-bound"], "max-bound", 0),
      loginLockoutMs: millisecondsFromSeconds(values["login-lockout"], "login-lockout"),
      idleTimeoutMs: millisecondsFromSeconds(values["idle-timeout"], "idle-timeout"),
      bindTimeoutMs: millisecondsFromSeconds(values["bind-timeout"], "bind-timeout"),
      allowAnyBind: Boolean(values["allow-any-bind"]),
      livenessIntervalMs: millisecondsFromSeconds(values["liveness-interval"], "liveness-interval"),
      livenessTimeoutMs: millisecondsFromSeconds(values["liveness-timeout"], "liveness-timeout"),
      livenessConcurrency: intValue(values["liveness-concurrency"], "liveness-concurrency", 1),
      maxHeaderBytes: intValue(values["max-header"], "max-header", 16),
      maxPayloadBytes: intValue(values["max-payload"], "max-payload", 0),
      peerTls: tlsClientOptions(values),
    };
    const dbGiven = args.some((a) => a === "--db" || a.startsWith("--db="));
    await runServer(values, logger, () => {
      // `deno run --allow-net servers/directory.ts` (no file access) still runs: with the default
      // database path and no permission to use it, accounts live in memory until the process ends.
      if (!dbGiven && !mayUseFile(options.db!)) {
        logger.warning(
          "No read/write permission for {db}: accounts are kept in memory only (run with --allow-read --allow-write to keep them)",
          { db: options.db },
        );
        options.db = ":memory:";
      }
      return serveDirectory(options);
    });
  });
}

if (import.meta.main) await main(Deno.args);
