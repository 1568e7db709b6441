/**
 * Command-line parsing for every entry point: flag specs, `--help` text, usage
 * errors with exit code 2, and readers for flag values.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_MAX_QUEUE_BYTES } from "../net/connection.ts";
import { CidrSet } from "../net/address.ts";
import { DEFAULT_FRAME_TIMEOUT_MS, DEFAULT_REGISTER_TIMEOUT_MS } from "../net/framing.ts";
import { ListenError } from "../net/listen.ts";
import {
  DEFAULT_EXEMPT,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PER_IP,
  type ServerLimits,
  type TlsCertificate,
  TlsSetupError,
} from "../net/serve.ts";
import { type TlsDialOptions, TlsHandshakeError } from "../net/dial.ts";
import denoConfig from "../deno.json" with { type: "json" };

/** Parley's version (from `deno.json`). */
export const PARLEY_VERSION: string = denoConfig.version;

/** One flag of a command. */
export interface FlagSpec {
  /** `string` flags take a value; `boolean` flags do not. */
  type: "string" | "boolean";
  /** The default, shown in `--help`. */
  default?: string | boolean;
  /** One line for `--help`. */
  description: string;
  /** Placeholder for the value in `--help` (default `VALUE`). */
  value?: string;
  /** Other spellings accepted for this flag (e.g. `servername`). */
  aliases?: string[];
}

/** A command's interface: its name, usage line, flags and the text of `--help`. */
export interface CommandSpec {
  /** Program name as the user types it, e.g. `servers/channel.ts`. */
  name: string;
  /** Usage line(s) after the name. */
  usage: string;
  /** One paragraph about what it does. */
  summary: string;
  /** The flags, by long name. */
  flags: Record<string, FlagSpec>;
  /** Extra help text printed after the flags. */
  epilog?: string;
}

/** A command-line mistake: printed with the usage line, exit code 2. */
export class UsageError extends Error {
  /** Makes a usage error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed flag values (strings and booleans) and positionals. */
export interface ParsedCli {
  /** Flag values by long name, defaults filled in. */
  values: Record<string, string | boolean | undefined>;
  /** Positional arguments. */
  positionals: string[];
}

/** The flags every server shares. */
export const SERVER_FLAGS: Record<string, FlagSpec> = {
  host: {
    type: "string",
    default: "127.0.0.1",
    value: "HOST",
    description: "address to listen on",
  },
  "log-level": {
    type: "string",
    default: "info",
    value: "LEVEL",
    description: "debug | info | warning | error",
  },
  "log-format": {
    type: "string",
    default: "pretty",
    value: "FORMAT",
    description: "pretty | json",
  },
  "max-queue": {
    type: "string",
    default: String(DEFAULT_MAX_QUEUE_BYTES),
    value: "BYTES",
    description: "bytes queued for one peer before it is disconnected",
  },
  "max-per-ip": {
    type: "string",
    default: String(DEFAULT_MAX_PER_IP),
    value: "N",
    description: "simultaneous connections from one address (not counting --exempt)",
  },
  exempt: {
    type: "string",
    default: DEFAULT_EXEMPT,
    value: "CIDR[,CIDR...]",
    description: "addresses --max-per-ip does not count ('' exempts nothing)",
  },
  "max-connections": {
    type: "string",
    default: String(DEFAULT_MAX_CONNECTIONS),
    value: "N",
    description: "simultaneous connections in all",
  },
  "frame-timeout": {
    type: "string",
    default: String(DEFAULT_FRAME_TIMEOUT_MS / 1000),
    value: "SECONDS",
    description: "a frame must be complete this long after its first byte (0: no limit)",
  },
  "register-timeout": {
    type: "string",
    default: String(DEFAULT_REGISTER_TIMEOUT_MS / 1000),
    value: "SECONDS",
    description: "a connection must register within this time (0: no limit)",
  },
  help: { type: "boolean", description: "show this help and exit" },
  version: { type: "boolean", description: "show the version and exit" },
};

/**
 * The TLS flags of every TCP server (SPEC 8.1): with both, the port speaks TLS
 * only. Reading the two files is the only permission they need
 * (`--allow-read=cert.pem,key.pem`).
 */
export const TLS_SERVER_FLAGS: Record<string, FlagSpec> = {
  "tls-cert": {
    type: "string",
    value: "FILE",
    description: "speak TLS only, with this PEM certificate chain (needs --allow-read of it)",
  },
  "tls-key": {
    type: "string",
    value: "FILE",
    description: "the PEM private key of --tls-cert (needs --allow-read of it)",
  },
};

/**
 * The TLS flags of every client and outgoing link (SPEC 8.1): `--tls` dials
 * with TLS and checks the server's certificate against the system roots and
 * `--ca` (which implies `--tls`).
 */
export const TLS_CLIENT_FLAGS: Record<string, FlagSpec> = {
  tls: { type: "boolean", description: "connect with TLS (plain TCP otherwise)" },
  ca: {
    type: "string",
    value: "FILE",
    description: "also trust this PEM CA certificate (a private CA; implies --tls)",
  },
};

const PEM_CERTIFICATE = { what: "certificate", marker: /-----BEGIN CERTIFICATE-----/ };
const PEM_KEY = { what: "private key", marker: /-----BEGIN [A-Z ]*PRIVATE KEY-----/ };

function readPem(path: string, flag: string, pem: { what: string; marker: RegExp }): string {
  const text = Deno.readTextFileSync(path);
  if (!pem.marker.test(text)) throw new UsageError(`--${flag} ${path} holds no PEM ${pem.what}`);
  return text;
}

/**
 * Reads `--tls-cert` and `--tls-key` ({@link TLS_SERVER_FLAGS}): undefined when
 * neither is given; one without the other is a usage error. A file that cannot
 * be read fails like any start-up error (one line, exit 1).
 */
export function tlsServerFiles(values: ParsedCli["values"]): TlsCertificate | undefined {
  const certPath = values["tls-cert"], keyPath = values["tls-key"];
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) {
    throw new UsageError("--tls-cert and --tls-key go together");
  }
  return {
    cert: readPem(String(certPath), "tls-cert", PEM_CERTIFICATE),
    key: readPem(String(keyPath), "tls-key", PEM_KEY),
  };
}

/**
 * Reads `--tls` and `--ca` ({@link TLS_CLIENT_FLAGS}): undefined for plain TCP,
 * otherwise how to check the server (the CA file read now).
 */
export function tlsClientOptions(values: ParsedCli["values"]): TlsDialOptions | undefined {
  if (values.ca === undefined) return values.tls ? {} : undefined;
  return { caCerts: [readPem(String(values.ca), "ca", PEM_CERTIFICATE)] };
}

/**
 * What a client adds to its "Unable to connect" line: `: <reason>` for a TLS
 * failure (wrong CA, not a TLS server), nothing otherwise.
 */
export function tlsFailure(error: unknown): string {
  return error instanceof TlsHandshakeError ? `: ${error.message}` : "";
}

/** Renders the `--help` text of a command. */
export function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.flags).map(([name, flag]) => {
    const left = `--${name}${flag.type === "string" ? ` ${flag.value ?? "VALUE"}` : ""}`;
    const aliases = flag.aliases?.length ? ` (also --${flag.aliases.join(", --")})` : "";
    const def = flag.default !== undefined && flag.type === "string"
      ? ` [default: ${flag.default}]`
      : "";
    return `  ${left.padEnd(26)} ${flag.description}${def}${aliases}`;
  });
  return [
    `Usage: ${spec.name} ${spec.usage}`,
    "",
    spec.summary,
    "",
    "Options:",
    ...rows,
    ...(spec.epilog ? ["", spec.epilog] : []),
    "",
  ].join("\n");
}

/**
 * Parses `args` against `spec`. Unknown flags and missing values throw
 * {@link UsageError}. Aliases (`--connect_to_host`) map onto long names.
 */
export function parseCommandLine(args: readonly string[], spec: CommandSpec): ParsedCli {
  const aliasTo = new Map<string, string>();
  for (const [name, flag] of Object.entries(spec.flags)) {
    for (const alias of flag.aliases ?? []) aliasTo.set(alias, name);
  }
  const named = args.map((arg) => {
    const m = /^--([^=]+)(=.*)?$/.exec(arg);
    if (!m || !aliasTo.has(m[1])) return arg;
    return `--${aliasTo.get(m[1])}${m[2] ?? ""}`;
  });
  // `--port -1` is a value that starts with a dash, not a missing value: pass it on so the
  // flag's own check can say what is wrong with it.
  const normalised: string[] = [];
  for (let i = 0; i < named.length; i++) {
    const flag = /^--([^=]+)$/.exec(named[i])?.[1];
    if (flag && spec.flags[flag]?.type === "string" && /^-\d/.test(named[i + 1] ?? "")) {
      normalised.push(`${named[i]}=${named[++i]}`);
    } else normalised.push(named[i]);
  }
  const options: Record<string, { type: "string" | "boolean"; default?: string | boolean }> = {};
  for (const [name, flag] of Object.entries(spec.flags)) {
    options[name] = {
      type: flag.type,
      ...(flag.default !== undefined ? { default: flag.default } : {}),
    };
  }
  try {
    const { values, positionals } = parseArgs({
      args: normalised,
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedCli["values"], positionals };
  } catch (error) {
    throw new UsageError(parseArgsMessage(error));
  }
}

/** `node:util` parseArgs messages, made short and balanced ("Unknown option '--bogus'"). */
function parseArgsMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /^Unknown option '([^']*)'/.exec(message);
  if (unknown) return `Unknown option '${unknown[1]}'`;
  const missing = /^Option '(-[^' ]+)(?: <value>)?' argument (?:missing|is ambiguous)/.exec(
    message,
  );
  if (missing) return `Option '${missing[1]}' needs a value`;
  return message.split("\n")[0];
}

/**
 * Runs an entry point's `main`: parses flags, prints `--help`, turns a
 * {@link UsageError} into a message on stderr and exit code 2.
 */
export async function runCommand(
  args: readonly string[],
  spec: CommandSpec,
  body: (cli: ParsedCli) => Promise<void> | void,
): Promise<void> {
  let cli: ParsedCli;
  try {
    cli = parseCommandLine(args, spec);
  } catch (error) {
    usageExit(spec, error);
  }
  if (cli.values.help) {
    console.log(helpText(spec));
    return;
  }
  if (cli.values.version) {
    console.log(`parley ${PARLEY_VERSION} (${spec.name}, Deno ${Deno.version.deno})`);
    return;
  }
  try {
    await body(cli);
  } catch (error) {
    if (error instanceof UsageError) usageExit(spec, error);
    if (error instanceof ListenError) {
      // SPEC 6.7: one line naming the address ("127.0.0.1:55555 is already in use").
      console.error(error.message);
      Deno.exit(error.exitCode);
    }
    if (isStartupFailure(error)) {
      // A refused permission, a port in use, a missing file: one clear line, no stack trace.
      console.error(`${spec.name}: ${error.name}: ${error.message}`);
      Deno.exit(1);
    }
    throw error;
  }
}

function isStartupFailure(error: unknown): error is Error {
  return error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable ||
    error instanceof Deno.errors.NotFound || error instanceof Deno.errors.ConnectionRefused ||
    error instanceof Deno.errors.TimedOut || error instanceof TlsSetupError ||
    error instanceof TlsHandshakeError;
}

function usageExit(spec: CommandSpec, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`${spec.name}: ${message}\nUsage: ${spec.name} ${spec.usage}\nTry --help.`);
  Deno.exit(2);
}

/** Reads a port number (0-65535) from a flag value. */
export function portValue(value: unknown, flag = "port"): number {
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`--${flag} must be a port number from 0 to 65535, got '${text}'`);
  }
  return Number(text);
}

/** Reads a non-negative integer from a flag value. */
export function intValue(value: unknown, flag: string, min = 0): number {
  const text = String(value);
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(`--${flag} must be a whole number of at least ${min}, got '${text}'`);
  }
  return Number(text);
}

/**
 * Reads a flag given in seconds (decimals allowed, `0.5`) and returns it in
 * milliseconds, the unit timers take.
 *
 * @example
 * ```ts
 * import { millisecondsFromSeconds } from "./command.ts";
 * console.assert(millisecondsFromSeconds("2.5", "frame-timeout") === 2500);
 * ```
 */
export function millisecondsFromSeconds(value: unknown, flag: string): number {
  const text = String(value);
  if (!/^\d+(\.\d+)?$|^\.\d+$/.test(text)) {
    throw new UsageError(`--${flag} must be a number of seconds, got '${text}'`);
  }
  return Number(text) * 1000;
}

/** Reads one of a fixed set of words from a flag value. */
export function choiceValue<T extends string>(
  value: unknown,
  flag: string,
  choices: readonly T[],
): T {
  const text = String(value);
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`--${flag} must be one of ${choices.join(", ")}, got '${text}'`);
  }
  return text as T;
}

/** Reads a comma-separated list of CIDR blocks (`--exempt`); '' is the empty list. */
export function cidrListValue(value: unknown, flag: string): string[] {
  const list = String(value).split(",").map((e) => e.trim()).filter((e) => e !== "");
  try {
    CidrSet.parse(list);
  } catch (error) {
    throw new UsageError(`--${flag}: ${error instanceof Error ? error.message : error}`);
  }
  return list;
}

/** The shared server flags, read: what every server passes on to `serveStream`. */
export interface ServerBasics extends ServerLimits {
  /** `--host`. */
  hostname: string;
  /** `--max-queue`. */
  maxQueueBytes: number;
  /** `--frame-timeout`, in ms. */
  frameTimeoutMs: number;
  /** `--register-timeout`, in ms. */
  registerTimeoutMs: number;
  /** `--max-per-ip`. */
  maxPerIp: number;
  /** `--exempt`. */
  exempt: string[];
  /** `--max-connections`. */
  maxConnections: number;
  /** `--tls-cert` and `--tls-key`, read (when the command has {@link TLS_SERVER_FLAGS}). */
  tls?: TlsCertificate;
}

/**
 * Reads the flags of {@link SERVER_FLAGS}: host, send-queue limit, the
 * connection limits, the time limits, and the TLS files (when the command has
 * {@link TLS_SERVER_FLAGS} and they are given). Spread the result into the server's
 * options (they extend `ServerLimits`).
 *
 * @example
 * ```ts
 * import { serverBasics } from "./command.ts";
 * const basics = serverBasics({ "frame-timeout": "0.5", exempt: "" });
 * console.assert(basics.frameTimeoutMs === 500 && basics.exempt.length === 0);
 * console.assert(basics.maxPerIp === 16 && basics.registerTimeoutMs === 10_000);
 * ```
 */
export function serverBasics(values: ParsedCli["values"]): ServerBasics {
  const value = (flag: string) => values[flag] ?? SERVER_FLAGS[flag].default;
  return {
    hostname: String(value("host")),
    maxQueueBytes: intValue(value("max-queue"), "max-queue", 1),
    frameTimeoutMs: millisecondsFromSeconds(value("frame-timeout"), "frame-timeout"),
    registerTimeoutMs: millisecondsFromSeconds(value("register-timeout"), "register-timeout"),
    maxPerIp: intValue(value("max-per-ip"), "max-per-ip", 1),
    exempt: cidrListValue(value("exempt"), "exempt"),
    maxConnections: intValue(value("max-connections"), "max-connections", 1),
    tls: tlsServerFiles(values),
  };
}
