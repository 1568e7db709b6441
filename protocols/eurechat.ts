/**
 * eurechat framing (seed 000, SPEC.md 1.1): a text header line, then a payload
 * of exactly the length the header declares.
 *
 * ```
 * TYPE SP LEN *(SP ARG) LF PAYLOAD
 *
 * "MESSAGE 12 sender\nHello world!"     type MESSAGE, args ["sender"], 12-byte payload
 * "PING 0\n"                            type PING, no args, empty payload
 * ```
 *
 * - TYPE: one or more of `[A-Za-z0-9_]`; LEN: decimal byte length of PAYLOAD;
 *   ARG: one or more non-whitespace characters; single spaces between fields.
 * - Limits (options): header line at most 1024 bytes (without its LF), LEN at
 *   most 65536. Over a limit is a `FrameTooLargeError`; any other malformed
 *   header (missing length, bad type, stray spaces) is a `FrameError`.
 * - PAYLOAD is bytes and may hold anything, newlines included.
 *
 * @module
 */

import { FrameError, FrameTooLargeError } from "./errors.ts";
import { ByteQueue, type FrameDecoder } from "./frames.ts";
import { isSafeName, utf8Length } from "./names.ts";

/** Default limit of a header line, in bytes (without the LF). */
export const EURECHAT_MAX_HEADER_BYTES = 1024;
/** Default limit of a payload, in bytes. */
export const EURECHAT_MAX_PAYLOAD_BYTES = 65536;

/** The message types of the directory and peer protocols. */
export const EURECHAT_TYPES = [
  "USER",
  "LOGIN",
  "PASS",
  "BIND",
  "QUERY",
  "LEAVE",
  "ACK",
  "ERR",
  "RESULT",
  "MESSAGE",
  "PING",
  "PONG",
] as const;

/** One eurechat message. */
export interface EurechatMessage {
  /** The type word, e.g. `USER`. */
  type: string;
  /** Space-separated arguments (no whitespace inside any). */
  args: string[];
  /** The payload bytes. */
  payload: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true });
const TYPE_PATTERN = /^[A-Za-z0-9_]+$/;
const ARG_PATTERN = /^[^\s]+$/;

/**
 * Encodes a message: `TYPE LEN a1 a2\n` + payload (or `TYPE LEN\n` + payload).
 *
 * @throws {TypeError} for a type that is not `[A-Za-z0-9_]+` or an arg that is empty or holds whitespace.
 * @example
 * ```ts
 * import { encodeEurechat } from "./eurechat.ts";
 * const bytes = encodeEurechat("MESSAGE", ["sender"], "Hello world!");
 * console.assert(new TextDecoder().decode(bytes) === "MESSAGE 12 sender\nHello world!");
 * ```
 */
export function encodeEurechat(
  type: string,
  args: readonly string[] = [],
  payload: string | Uint8Array = "",
): Uint8Array {
  if (!TYPE_PATTERN.test(type)) {
    throw new TypeError(`Cannot encode message: invalid type '${type}'`);
  }
  for (const arg of args) {
    if (!ARG_PATTERN.test(arg)) {
      throw new TypeError(`Cannot encode message: invalid argument '${arg}'`);
    }
  }
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const header = encoder.encode(
    args.length ? `${type} ${body.length} ${args.join(" ")}\n` : `${type} ${body.length}\n`,
  );
  const out = new Uint8Array(header.length + body.length);
  out.set(header);
  out.set(body, header.length);
  return out;
}

/**
 * The payload as UTF-8 text.
 *
 * @example
 * ```ts
 * import { encodeEurechat, EurechatDecoder, payloadText } from "./eurechat.ts";
 * const [m] = new EurechatDecoder().decode(encodeEurechat("ACK", [], "ok"));
 * console.assert(payloadText(m) === "ok");
 * ```
 */
export function payloadText(message: EurechatMessage): string {
  return decoder.decode(message.payload);
}

/** Limits of a {@link EurechatDecoder}. */
export interface EurechatDecoderOptions {
  /** Longest header line in bytes, without the LF (default 1024). */
  maxHeaderBytes?: number;
  /** Largest payload in bytes (default 65536). */
  maxPayloadBytes?: number;
}

/**
 * Incremental eurechat decoder: any chunking gives the same messages.
 *
 * @example
 * ```ts
 * import { EurechatDecoder } from "./eurechat.ts";
 * const d = new EurechatDecoder();
 * const input = new TextEncoder().encode("USER 0 corrado\nPASS 0 mypass\n");
 * const messages = d.decode(input);
 * console.assert(messages.length === 2 && messages[1].args[0] === "mypass");
 * ```
 */
export class EurechatDecoder implements FrameDecoder<EurechatMessage> {
  #queue = new ByteQueue();
  #maxHeader: number;
  #maxPayload: number;
  /** Header of the message whose payload is awaited. */
  #pending?: { type: string; args: string[]; length: number };

  /** Makes a decoder with the given limits. */
  constructor(options: EurechatDecoderOptions = {}) {
    this.#maxHeader = options.maxHeaderBytes ?? EURECHAT_MAX_HEADER_BYTES;
    this.#maxPayload = options.maxPayloadBytes ?? EURECHAT_MAX_PAYLOAD_BYTES;
  }

  /** Feeds bytes; returns the messages completed. */
  decode(chunk: Uint8Array): EurechatMessage[] {
    this.#queue.append(chunk);
    const out: EurechatMessage[] = [];
    while (true) {
      if (!this.#pending) {
        const nl = this.#queue.findLineEnd(this.#maxHeader, "header line");
        if (nl === -1) return out;
        this.#pending = this.#parseHeader(this.#queue.view().subarray(0, nl));
        this.#queue.skip(nl + 1);
      }
      const { type, args, length } = this.#pending;
      if (this.#queue.length < length) return out;
      out.push({ type, args, payload: this.#queue.take(length) });
      this.#pending = undefined;
    }
  }

  #parseHeader(line: Uint8Array): { type: string; args: string[]; length: number } {
    const offset = this.#queue.consumed;
    let text: string;
    try {
      text = strictDecoder.decode(line);
    } catch (cause) {
      throw new FrameError("header line is not valid UTF-8", { offset, cause });
    }
    const fields = text.split(" ");
    const [type, len, ...args] = fields;
    if (!TYPE_PATTERN.test(type)) {
      throw new FrameError(
        type === ""
          ? "header line does not start with a type"
          : `invalid message type '${clip(type)}'`,
        { offset },
      );
    }
    if (len === undefined || len === "") {
      throw new FrameError(`header of ${type} has no length`, { offset });
    }
    if (!/^\d+$/.test(len)) {
      throw new FrameError(`length '${clip(len)}' is not a decimal number`, { offset });
    }
    const length = len.length > 12 ? Infinity : Number(len);
    if (length > this.#maxPayload) {
      throw new FrameTooLargeError(
        `declared length ${clip(len)} exceeds limit of ${this.#maxPayload} bytes`,
        { offset },
      );
    }
    for (const arg of args) {
      if (!ARG_PATTERN.test(arg)) {
        throw new FrameError(
          arg === "" ? "stray space in header line" : "whitespace inside an argument",
          { offset },
        );
      }
    }
    return { type, args, length };
  }

  /** Bytes of a partial message held (0 at a boundary). */
  get buffered(): number {
    return this.#queue.length + (this.#pending ? 1 : 0);
  }

  /** Throws a `FrameError` if a partial message is buffered. */
  end(): void {
    if (this.#pending || this.#queue.length > 0) {
      throw new FrameError("stream ended inside a message", { offset: this.#queue.consumed });
    }
  }
}

function clip(text: string): string {
  return text.length > 20 ? `${text.slice(0, 20)}...` : text;
}

/** Default port of the directory server. */
export const DIRECTORY_PORT = 8888;

/** Longest directory user name, in UTF-8 bytes (SPEC.md 6.3). */
export const DIRECTORY_NAME_MAX_BYTES = 32;

/** Longest address a directory accepts in BIND, in bytes (keeps a full QUERY under 1 MiB). */
export const DIRECTORY_ADDR_MAX_BYTES = 64;

/**
 * Largest RESULT payload a directory sends: Parley's clients accept eurechat
 * payloads up to 1 MiB (SPEC.md 6.4). At the caps (10,000 bound names of 32
 * bytes, addresses of 64) a full QUERY is 1,039,999 bytes.
 */
export const DIRECTORY_MAX_RESULT_BYTES = 1024 * 1024;

/**
 * Why `name` cannot be a directory user name, or `undefined` if it can
 * (SPEC.md 6.3): a {@link isSafeName safe name} (valid UTF-8, no C0, DEL, C1
 * or bidi controls) of 1 to 32 UTF-8 bytes with no whitespace and no `,` (the
 * field separator of a RESULT line).
 *
 * @example
 * ```ts
 * import { directoryNameProblem } from "./eurechat.ts";
 * console.assert(directoryNameProblem("corrado") === undefined);
 * console.assert(directoryNameProblem("a,b") !== undefined);
 * console.assert(directoryNameProblem("x".repeat(33)) !== undefined);
 * ```
 */
export function directoryNameProblem(name: string): string | undefined {
  if (name === "") return "the name is empty";
  if (!isSafeName(name)) return "the name is not valid UTF-8 or holds a control character";
  if (utf8Length(name) > DIRECTORY_NAME_MAX_BYTES) {
    return `the name is longer than ${DIRECTORY_NAME_MAX_BYTES} bytes`;
  }
  if (/[\s,]/u.test(name)) return "the name holds whitespace or a comma";
  return undefined;
}

/** The directory's reply texts, exactly as SPEC.md 1.2 gives them. */
export const DIRECTORY_TEXTS = {
  hello: (name: string): string => `hi ${name}, authentication required`,
  userExpected: "a 'USER <username>' command was expected!",
  passExpected: "a 'PASS <password>' command was expected!",
  authenticated: "successfully authenticated",
  authFailed: "authentication failed",
  bound: (addr: string, port: number): string => `bound successfully to ${addr}:${port}`,
  invalidBind: "invalid bind notification",
  deregistered: "deregistered from directory",
  notUnderstood: (type: string): string => `I did not understand the message ${type}`,
  idle: "shutting down idle connection (timeout)",
  unexpected: "unexpected error",
  /** Parley's throttle (SPEC.md 6.5, not in the original). */
  throttled: (seconds: number): string => `too many failed logins, try again in ${seconds} seconds`,
  /** The hash queue is full (SPEC.md 6.5). */
  busy: "server busy, try again later",
  /** Sent to the older session when the same name logs in again (SPEC.md 6.5). */
  takenOver: "logged in from another session",
  /** Parley's sign-up limit per address (`--signups-per-minute`; SPEC.md gives no text). */
  signupLimit: (seconds: number): string =>
    `too many new accounts from your address, try again in ${seconds} seconds`,
  /** A BIND of a new name when `--max-bound` users are bound (SPEC.md gives no text). */
  full: "too many bound users, try again later",
  /** USER and PASS were not both done within `--register-timeout` (SPEC.md gives no text). */
  registerTimeout: "login not completed in time",
  /** Sent to every session when the server stops. */
  shuttingDown: "directory shutting down",
} as const;
