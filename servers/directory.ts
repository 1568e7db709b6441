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
import { DIRECTORY_PORT, DIRECTORY_TEXTS } from "../protocols/eurechat.ts";
import { getLogger } from "@logtape/logtape";
import { encodeEurechat, EurechatDecoder, type EurechatMessage } from "../protocols/eurechat.ts";
import { isFrameError } from "../protocols/errors.ts";
import { readFrames } from "../protocols/frames.ts";
import type { Connection } from "../net/connection.ts";
import { connectWithTimeout, type TlsDialOptions } from "../net/dial.ts";
import { formatAddr } from "../net/address.ts";
import { IdleTimer } from "../net/timers.ts";
import { type Server, serveStream, type TlsCertificate } from "../net/serve.ts";
import { writeAll } from "../net/bytes.ts";
import { AccountStore, DEFAULT_HASH_COST, LoginThrottle } from "./_accounts.ts";
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

/** Where a user can be reached. */
export interface Binding {
  /** The address as the user gave it. */
  addr: string;
  /** The port. */
  port: number;
}

/** Options of {@link serveDirectory}. */
export interface DirectoryOptions {
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
  /** Failed logins per name or address before refusing (default 5). */
  maxLoginFailures?: number;
  /** How long failures count and a lockout lasts, ms (default 60 s). */
  loginLockoutMs?: number;
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
  /** Send-queue limit per connection. */
  maxQueueBytes?: number;
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

function isLoopback(address: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(address) || address === "::1" || address === "localhost";
}

function plainAddress(address: string): string {
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/**
 * Starts a directory server.
 *
 * @example
 * ```ts
 * import { serveDirectory } from "./directory.ts";
 * await using directory = serveDirectory({ port: 0, db: ":memory:", livenessIntervalMs: 0 });
 * console.assert(directory.bindings.size === 0);
 * ```
 */
export function serveDirectory(options: DirectoryOptions = {}): DirectoryServer {
  const accounts = new AccountStore(
    options.db ?? DIRECTORY_DB,
    options.hashCost ?? DEFAULT_HASH_COST,
  );
  const throttle = new LoginThrottle({
    maxFailures: options.maxLoginFailures ?? 5,
    windowMs: options.loginLockoutMs ?? 60_000,
  });
  const signupOpen = (options.signup ?? "open") === "open";
  const bindings = new Map<string, Binding>();
  const idleMs = options.idleTimeoutMs ?? 30_000;
  const bindTimeout = options.bindTimeoutMs ?? 2000;
  const livenessTimeout = options.livenessTimeoutMs ?? 5000;
  const concurrency = options.livenessConcurrency ?? 128;

  const reply = (connection: Connection, type: string, text: string) =>
    connection.send(encodeEurechat(type, [], text));

  const session = async (connection: Connection) => {
    const peer = formatAddr(connection.remoteAddr);
    const peerHost = "hostname" in connection.remoteAddr
      ? plainAddress(connection.remoteAddr.hostname)
      : "";
    const fail = async (text: string) => {
      reply(connection, "ERR", text);
      await connection.end();
    };
    const idle = new IdleTimer(idleMs, () => {
      logger.info("Closing idle session {peer}", { peer });
      void fail(DIRECTORY_TEXTS.idle);
    });
    const decoder = new EurechatDecoder({
      maxHeaderBytes: options.maxHeaderBytes,
      maxPayloadBytes: options.maxPayloadBytes,
    });
    let state: "user" | "pass" | "ready" = "user";
    let username = "";

    const bind = async (m: EurechatMessage) => {
      const [addr, portText] = m.args;
      const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
      const allowed = options.allowAnyBind || addr === peerHost ||
        (isLoopback(peerHost) && isLoopback(addr));
      if (port < 1 || port > 65535 || !allowed) {
        logger.info("Refused BIND {addr} {port} from {user} at {peer}", {
          addr,
          port: portText,
          user: username,
          peer,
        });
        return false;
      }
      try {
        const probe = await connectWithTimeout(addr, port, bindTimeout, options.peerTls);
        probe.close();
      } catch (error) {
        logger.info("BIND port test of {addr}:{port} for {user} failed: {error}", {
          addr,
          port,
          user: username,
          error: String(error),
        });
        return false;
      }
      bindings.delete(username); // a new binding goes to the end of the order
      bindings.set(username, { addr, port });
      logger.info("{user} bound to {addr}:{port}", { user: username, addr, port });
      reply(connection, "ACK", DIRECTORY_TEXTS.bound(addr, port));
      return true;
    };

    const handle = async (m: EurechatMessage): Promise<boolean> => {
      switch (state) {
        case "user":
          if ((m.type !== "USER" && m.type !== "LOGIN") || m.args.length !== 1) {
            await fail(DIRECTORY_TEXTS.userExpected);
            return false;
          }
          username = m.args[0];
          reply(connection, "ACK", DIRECTORY_TEXTS.hello(username));
          state = "pass";
          return true;
        case "pass": {
          if (m.type !== "PASS" || m.args.length !== 1) {
            await fail(DIRECTORY_TEXTS.passExpected);
            return false;
          }
          const keys = [`name:${username}`, `addr:${peerHost || peer}`];
          const wait = throttle.begin(keys);
          if (wait > 0) {
            logger.warning("Login for {user} from {peer} throttled", { user: username, peer });
            await fail(DIRECTORY_TEXTS.throttled(wait));
            return false;
          }
          let ok = false;
          try {
            ok = await accounts.login(username, m.args[0], signupOpen);
          } finally {
            throttle.finish(keys, ok);
          }
          if (!ok) {
            logger.info("Authentication failed for {user} from {peer}", { user: username, peer });
            await fail(DIRECTORY_TEXTS.authFailed);
            return false;
          }
          logger.info("{user} logged in from {peer}", { user: username, peer });
          reply(connection, "ACK", DIRECTORY_TEXTS.authenticated);
          state = "ready";
          return true;
        }
        case "ready":
          if (m.type === "BIND" && m.args.length === 2) {
            if (await bind(m)) return true;
            await fail(DIRECTORY_TEXTS.invalidBind);
            return false;
          }
          if (m.type === "QUERY" && m.args.length <= 1) {
            const rows = m.args.length === 1
              ? (bindings.has(m.args[0]) ? [[m.args[0], bindings.get(m.args[0])!] as const] : [])
              : [...bindings];
            reply(
              connection,
              "RESULT",
              rows.map(([name, b]) => `${name},${b.addr},${b.port}`).join("\n"),
            );
            return true;
          }
          if (m.type === "LEAVE" && m.args.length === 0) {
            bindings.delete(username);
            logger.info("{user} left the directory", { user: username });
            reply(connection, "ACK", DIRECTORY_TEXTS.deregistered);
            return true;
          }
          await fail(DIRECTORY_TEXTS.notUnderstood(m.type));
          return false;
      }
    };

    try {
      for await (const chunk of connection.chunks()) {
        idle.reset();
        let messages: EurechatMessage[];
        try {
          messages = decoder.decode(chunk);
        } catch (error) {
          if (!isFrameError(error)) throw error;
          logger.info("Protocol error from {peer}: {error}", { peer, error: error.message });
          await fail(error.message);
          return;
        }
        for (const m of messages) {
          if (!(await handle(m))) return;
          idle.reset();
        }
      }
    } catch (error) {
      logger.error("Session {peer} failed: {error}", { peer, error: String(error) });
      await fail(DIRECTORY_TEXTS.unexpected);
    } finally {
      idle.clear();
    }
  };

  const server = serveStream(
    {
      hostname: options.hostname ?? "127.0.0.1",
      port: options.port ?? DIRECTORY_PORT,
      tls: options.tls,
    },
    session,
    {
      logger,
      maxQueueBytes: options.maxQueueBytes,
      farewell: (connection) => reply(connection, "ERR", DIRECTORY_TEXTS.shuttingDown),
      onClosed: () => accounts.close(),
    },
  );

  const checkLiveness = async (): Promise<string[]> => {
    const snapshot = [...bindings];
    const removed: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < snapshot.length) {
        const [name, binding] = snapshot[next++];
        const alive = await pingPeer(binding.addr, binding.port, livenessTimeout, options.peerTls);
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

  let livenessTimer: ReturnType<typeof setTimeout> | undefined;
  let sweeping: Promise<unknown> | undefined;
  let stopped = false;
  const interval = options.livenessIntervalMs ?? 10_000;
  const schedule = () => {
    if (stopped || interval <= 0) return;
    livenessTimer = setTimeout(() => {
      sweeping = checkLiveness().catch((error) =>
        logger.error("Liveness sweep failed: {error}", { error: String(error) })
      )
        .finally(schedule);
    }, interval);
  };
  schedule();

  const shutdown = async () => {
    stopped = true;
    clearTimeout(livenessTimer);
    await server.shutdown();
    await sweeping;
  };
  logger.info("Listening on {addr}", { addr: formatAddr(server.addr) });
  return {
    addr: server.addr,
    finished: server.finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
    bindings,
    checkLiveness,
  };
}

/**
 * Connects to a peer, sends `PING 0\n` and waits for a `PONG`, all within `timeoutMs`.
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
  let conn: Deno.Conn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  try {
    conn = await connectWithTimeout(addr, port, timeoutMs, tls);
    const open = conn;
    // One deadline for the whole check: closing the socket ends a pending write or read.
    timer = setTimeout(() => {
      timedOut = true;
      try {
        open.close();
      } catch { /* closed */ }
    }, Math.max(1, deadline - performance.now()));
    await writeAll(open, encodeEurechat("PING"));
    for await (const reply of readFrames(open.readable, new EurechatDecoder())) {
      return reply.type === "PONG" ? { ok: true } : { ok: false, reason: `answered ${reply.type}` };
    }
    return { ok: false, reason: "closed without PONG" };
  } catch (error) {
    return { ok: false, reason: timedOut ? "no PONG in time" : String(error) };
  } finally {
    clearTimeout(timer);
    if (!timedOut) {
      try {
        conn?.close();
      } catch { /* closed */ }
    }
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
    "max-login-failures": {
      type: "string",
      default: "5",
      value: "N",
      description: "failed logins per name or address before refusing",
    },
    "login-lockout": {
      type: "string",
      default: "60",
      value: "SECONDS",
      description: "how long failures count and a lockout lasts",
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
  },
  epilog:
    "Passwords for adduser are read without echo from a terminal, or as the first line of stdin.",
};

function mayUseFile(path: string): boolean {
  return Deno.permissions.querySync({ name: "read", path }).state === "granted" &&
    Deno.permissions.querySync({ name: "write", path }).state === "granted";
}

async function admin(command: string, name: string | undefined, values: Record<string, unknown>) {
  if (!name || !/^\S+$/.test(name)) throw new UsageError(`${command} needs a NAME without spaces`);
  const store = new AccountStore(String(values.db), intValue(values["hash-cost"], "hash-cost", 1));
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
      maxLoginFailures: intValue(values["max-login-failures"], "max-login-failures", 1),
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
