/**
 * The directory's session logic as a pure state machine (SPEC.md 1.2 and
 * 6.3-6.5): messages and events in, actions out. No sockets, timers or
 * hashing here; `servers/directory.ts` is the I/O shell that performs the
 * actions (send a reply, close, hash a password, test a port) and feeds their
 * results back. Framing errors and the time limits of SPEC.md 6.2 (frame,
 * register and idle timeouts) belong to the one read path (`net/framing.ts`),
 * which the shell configures with the directory's texts.
 *
 * ```
 *  user --USER/LOGIN name--> pass --PASS pw--> authenticating --ok--> ready <--> binding
 *    \________________________\_________________\____ any error ____\________\--> closed
 * ```
 *
 * Messages that arrive while a session waits for a hash or a port test are
 * kept in order and handled when it is done. A second login of a name takes
 * the name over: the older session gets `ERR` "logged in from another
 * session" and is closed; the binding stays until the new one BINDs or
 * LEAVEs.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import {
  DIRECTORY_ADDR_MAX_BYTES,
  DIRECTORY_MAX_RESULT_BYTES,
  DIRECTORY_TEXTS,
  directoryNameProblem,
  type EurechatMessage,
} from "../protocols/eurechat.ts";
import { utf8Length } from "../protocols/names.ts";
import type { LoginAttempt, LoginThrottle, RateLimiter } from "./_accounts.ts";

/** Where a user can be reached. */
export interface Binding {
  /** The address as the user gave it. */
  addr: string;
  /** The port. */
  port: number;
}

/** What a session asks its I/O shell to do. */
export type SessionAction =
  /** Send a message whose payload is `text`. */
  | { kind: "reply"; type: "ACK" | "ERR" | "RESULT"; text: string }
  /** Flush what was sent and close the connection. */
  | { kind: "close" }
  /** USER and PASS succeeded: the `--register-timeout` no longer applies. */
  | { kind: "registered" }
  /** Check (or, with `create`, create) an account; answer with {@link DirectorySession.loginDone}. */
  | { kind: "login"; name: string; password: string; create: boolean }
  /** Test that addr:port accepts a connection; answer with {@link DirectorySession.probeDone}. */
  | { kind: "probe"; addr: string; port: number };

/** How a login action ended: `gone` when the peer hung up while its hash waited. */
export type LoginOutcome = "ok" | "failed" | "busy" | "gone" | "error";

/** The peer of a session. */
export interface SessionPeer {
  /** Its IP address (IPv4-mapped IPv6 given as IPv4), the key of every per-address limit. */
  address: string;
  /** How logs name it (`host:port`). */
  label: string;
}

/** What a {@link DirectoryCore} needs to know. */
export interface DirectoryCoreOptions {
  /** Login failure counts (per address and per address and name). */
  throttle: LoginThrottle;
  /** New accounts per address. */
  signups: RateLimiter;
  /** True if the account exists. */
  accountExists: (name: string) => boolean;
  /** `open`: the first login of an unknown name creates it (default). */
  signup?: "open" | "closed";
  /** Addresses not counted by the sign-up limit (`--exempt`). */
  isExempt?: (address: string) => boolean;
  /** Most names bound at once (default 10000). */
  maxBound?: number;
  /** Let peers bind any address, not only the one they connect from. */
  allowAnyBind?: boolean;
  /** Ports the directory itself listens on: never accepted in BIND. */
  ownPorts?: readonly number[];
}

const logger = getLogger(["parley", "directory"]);
const ADDR_PATTERN = /^[A-Za-z0-9._:%-]+$/;

function isLoopback(address: string): boolean {
  return /^127\.\d+\.\d+\.\d+$/.test(address) || address === "::1" || address === "localhost";
}

/** The state every session of one directory shares: bindings, who holds which name, limits. */
export class DirectoryCore {
  /** Current bindings, in registration order. */
  readonly bindings: Map<string, Binding> = new Map();
  /** Ports BIND refuses (the directory's own; set once it listens). */
  ownPorts: Set<number>;
  readonly #options: DirectoryCoreOptions;
  readonly #holders = new Map<string, DirectorySession>();

  /** Makes the shared state. */
  constructor(options: DirectoryCoreOptions) {
    this.#options = options;
    this.ownPorts = new Set(options.ownPorts ?? []);
  }

  /** The options it was made with. */
  get options(): Readonly<DirectoryCoreOptions> {
    return this.#options;
  }

  /** Starts a session for a new connection; every action it takes goes to `deliver`. */
  open(peer: SessionPeer, deliver: (action: SessionAction) => void): DirectorySession {
    return new DirectorySession(this, peer, deliver);
  }

  /** The session that holds `name` (logged in last), if any. */
  holder(name: string): DirectorySession | undefined {
    return this.#holders.get(name);
  }

  /** `session` has logged in as `name`: it holds the name now, and an older holder is closed. */
  claim(name: string, session: DirectorySession): void {
    const older = this.#holders.get(name);
    this.#holders.set(name, session);
    if (older && older !== session) older.takenOver();
  }

  /** `session` is over: it no longer holds its name (its binding stays). */
  release(name: string, session: DirectorySession): void {
    if (this.#holders.get(name) === session) this.#holders.delete(name);
  }

  /** Sessions holding a name. */
  get holders(): number {
    return this.#holders.size;
  }

  /**
   * The RESULT payload of `QUERY` (everyone) or `QUERY name`: lines
   * `name,addr,port`. It never exceeds {@link DIRECTORY_MAX_RESULT_BYTES};
   * at the default caps everyone fits, with a larger `--max-bound` the list
   * stops at the last whole line that does.
   */
  query(name?: string): string {
    const line = (n: string, b: Binding) => `${n},${b.addr},${b.port}`;
    if (name !== undefined) {
      const binding = this.bindings.get(name);
      return binding ? line(name, binding) : "";
    }
    const lines: string[] = [];
    let bytes = -1;
    for (const [n, b] of this.bindings) {
      const text = line(n, b);
      bytes += utf8Length(text) + 1;
      if (bytes > DIRECTORY_MAX_RESULT_BYTES) {
        logger.warning("QUERY answer cut to {count} of {total} bound users to fit 1 MiB", {
          count: lines.length,
          total: this.bindings.size,
        });
        break;
      }
      lines.push(text);
    }
    return lines.join("\n");
  }
}

type State = "user" | "pass" | "authenticating" | "ready" | "binding" | "closed";

/** One connection's session (see the module doc). Made by {@link DirectoryCore.open}. */
export class DirectorySession {
  readonly #core: DirectoryCore;
  readonly #peer: SessionPeer;
  readonly #deliver: (action: SessionAction) => void;
  #state: State = "user";
  #name = "";
  #inbox: EurechatMessage[] = [];
  #attempt?: LoginAttempt;
  #wanted?: Binding;

  /** Use {@link DirectoryCore.open}. */
  constructor(core: DirectoryCore, peer: SessionPeer, deliver: (action: SessionAction) => void) {
    this.#core = core;
    this.#peer = peer;
    this.#deliver = deliver;
  }

  /** The name given in USER (empty before). */
  get name(): string {
    return this.#name;
  }

  /** True once the session has ended (it takes no more input). */
  get closed(): boolean {
    return this.#state === "closed";
  }

  /** True while it waits for a login or a port test. */
  get busy(): boolean {
    return this.#state === "authenticating" || this.#state === "binding";
  }

  /** True once USER and PASS succeeded. */
  get authenticated(): boolean {
    return this.#state === "ready" || this.#state === "binding";
  }

  /** Messages waiting until the session is no longer busy. */
  get backlog(): number {
    return this.#inbox.length;
  }

  /** A complete message arrived. */
  receive(message: EurechatMessage): void {
    if (this.closed) return;
    if (this.busy) this.#inbox.push(message);
    else this.#handle(message);
  }

  /** The login action ended. Always call it, even after the session closed. */
  loginDone(outcome: LoginOutcome): void {
    if (this.#attempt) this.#core.options.throttle.finish(this.#attempt, outcome === "failed");
    this.#attempt = undefined;
    if (this.#state !== "authenticating") return;
    const log = { user: this.#name, peer: this.#peer.label };
    switch (outcome) {
      case "ok":
        logger.info("{user} logged in from {peer}", log);
        this.#core.claim(this.#name, this);
        this.#reply("ACK", DIRECTORY_TEXTS.authenticated);
        this.#deliver({ kind: "registered" });
        this.#state = "ready";
        return this.#drain();
      case "failed":
        logger.info("Authentication failed for {user} from {peer}", log);
        return this.#fail(DIRECTORY_TEXTS.authFailed);
      case "busy":
        logger.warning("Hash queue full: refused login of {user} from {peer}", log);
        return this.#fail(DIRECTORY_TEXTS.busy);
      case "gone":
        return this.#close();
      case "error":
        return this.#fail(DIRECTORY_TEXTS.unexpected);
    }
  }

  /** The port test of a BIND ended. */
  probeDone(ok: boolean): void {
    if (this.#state !== "binding" || !this.#wanted) return;
    const wanted = this.#wanted;
    this.#wanted = undefined;
    if (!ok) return this.#fail(DIRECTORY_TEXTS.invalidBind);
    if (this.#full()) return this.#fail(DIRECTORY_TEXTS.full);
    const bindings = this.#core.bindings;
    bindings.delete(this.#name); // a new binding goes to the end of the order
    bindings.set(this.#name, wanted);
    logger.info("{user} bound to {addr}:{port}", { user: this.#name, ...wanted });
    this.#reply("ACK", DIRECTORY_TEXTS.bound(wanted.addr, wanted.port));
    this.#state = "ready";
    this.#drain();
  }

  /** Something inside the server failed: `ERR` "unexpected error" and close. */
  failure(): void {
    if (!this.closed) this.#fail(DIRECTORY_TEXTS.unexpected);
  }

  /** The connection is gone: the session ends silently (its binding stays). */
  end(): void {
    this.#state = "closed";
    this.#inbox = [];
    this.#core.release(this.#name, this);
  }

  /** Called by {@link DirectoryCore.claim} when a newer session logged in as this name. */
  takenOver(): void {
    if (this.closed) return;
    logger.info("{user} at {peer} was taken over by a newer login", {
      user: this.#name,
      peer: this.#peer.label,
    });
    this.#fail(DIRECTORY_TEXTS.takenOver);
  }

  #reply(type: "ACK" | "ERR" | "RESULT", text: string): void {
    this.#deliver({ kind: "reply", type, text });
  }

  #close(): void {
    this.end();
    this.#deliver({ kind: "close" });
  }

  #fail(text: string): void {
    this.#reply("ERR", text);
    this.#close();
  }

  #drain(): void {
    while (!this.busy && !this.closed && this.#inbox.length > 0) {
      this.#handle(this.#inbox.shift()!);
    }
  }

  #handle(m: EurechatMessage): void {
    switch (this.#state) {
      case "user":
        return this.#user(m);
      case "pass":
        return this.#pass(m);
      case "ready":
        return this.#ready(m);
    }
  }

  #user(m: EurechatMessage): void {
    if ((m.type !== "USER" && m.type !== "LOGIN") || m.args.length !== 1) {
      return this.#fail(DIRECTORY_TEXTS.userExpected);
    }
    const problem = directoryNameProblem(m.args[0]);
    if (problem) {
      // A bad name is a bad argument of USER: the same reply as a missing one (SPEC.md 6.3).
      logger.info("Refused USER from {peer}: {problem}", { peer: this.#peer.label, problem });
      return this.#fail(DIRECTORY_TEXTS.userExpected);
    }
    this.#name = m.args[0];
    this.#reply("ACK", DIRECTORY_TEXTS.hello(this.#name));
    this.#state = "pass";
  }

  #pass(m: EurechatMessage): void {
    if (m.type !== "PASS" || m.args.length !== 1) return this.#fail(DIRECTORY_TEXTS.passExpected);
    const options = this.#core.options;
    const attempt = { address: this.#peer.address, name: this.#name };
    const wait = options.throttle.begin(attempt);
    if (wait > 0) {
      logger.warning("Login for {user} from {peer} throttled", {
        user: this.#name,
        peer: this.#peer.label,
      });
      return this.#fail(DIRECTORY_TEXTS.throttled(wait));
    }
    const create = (options.signup ?? "open") === "open" && !options.accountExists(this.#name);
    if (create && !(options.isExempt?.(attempt.address) ?? false)) {
      const signupWait = options.signups.take(attempt.address);
      if (signupWait > 0) {
        options.throttle.finish(attempt, false);
        logger.warning("Sign-up of {user} from {peer} refused: too many new accounts", {
          user: this.#name,
          peer: this.#peer.label,
        });
        return this.#fail(DIRECTORY_TEXTS.signupLimit(signupWait));
      }
    }
    this.#attempt = attempt;
    this.#state = "authenticating";
    this.#deliver({ kind: "login", name: this.#name, password: m.args[0], create });
  }

  #ready(m: EurechatMessage): void {
    if (m.type === "BIND" && m.args.length === 2) return this.#bind(m.args[0], m.args[1]);
    if (m.type === "QUERY" && m.args.length <= 1) {
      return this.#reply("RESULT", this.#core.query(m.args[0]));
    }
    if (m.type === "LEAVE" && m.args.length === 0) {
      this.#core.bindings.delete(this.#name);
      logger.info("{user} left the directory", { user: this.#name });
      return this.#reply("ACK", DIRECTORY_TEXTS.deregistered);
    }
    this.#fail(DIRECTORY_TEXTS.notUnderstood(m.type));
  }

  /** True when binding this session's name would pass `--max-bound`. */
  #full(): boolean {
    const { bindings } = this.#core;
    return !bindings.has(this.#name) && bindings.size >= (this.#core.options.maxBound ?? 10_000);
  }

  #bind(addr: string, portText: string): void {
    const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0;
    const peerHost = this.#peer.address;
    const allowed = this.#core.options.allowAnyBind || addr === peerHost ||
      (isLoopback(peerHost) && isLoopback(addr));
    const wellFormed = addr.length <= DIRECTORY_ADDR_MAX_BYTES && ADDR_PATTERN.test(addr);
    if (port < 1024 || port > 65535 || this.#core.ownPorts.has(port) || !allowed || !wellFormed) {
      logger.info("Refused BIND {addr} {port} from {user} at {peer}", {
        addr,
        port: portText,
        user: this.#name,
        peer: this.#peer.label,
      });
      return this.#fail(DIRECTORY_TEXTS.invalidBind);
    }
    if (this.#full()) {
      logger.warning("Refused BIND of {user}: {max} users are bound", {
        user: this.#name,
        max: this.#core.bindings.size,
      });
      return this.#fail(DIRECTORY_TEXTS.full);
    }
    this.#wanted = { addr, port };
    this.#state = "binding";
    this.#deliver({ kind: "probe", addr, port });
  }
}
