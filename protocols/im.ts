/**
 * IM conversation protocol (seed 001, SPEC.md 2): the original's "command
 * string plus serialised arguments, split at the first space", with JSON in
 * place of pickle and LF as the terminator.
 *
 * ```
 * COMMAND [SP JSON] LF          COMMAND is [A-Z_]+, JSON is one line
 *
 * REGISTER ["alice","online"]\n
 * ONLINE_USERS {"alice":"online","bob":"away"}\n
 * GOODBYE\n
 * ```
 *
 * Framing is the line: a line over 64 KiB is a `FrameTooLargeError` (the
 * connection cannot recover its boundaries). A line that is framed but wrong
 * (unknown command, bad JSON, wrong argument shape) is an {@link ImMessageError},
 * which a server answers with `ERROR` and carries on.
 *
 * @module
 */

import { assertNoPartialFrame, ByteQueue, type FrameDecoder } from "./frames.ts";
import { isSafeName } from "./names.ts";

/** Default limit of one line a server accepts from a client, in bytes (without the LF). */
export const IM_MAX_LINE_BYTES = 64 * 1024;

/**
 * Longest line Parley's IM client accepts from a server (SPEC 6.4), and so
 * the longest line a server may send. At the default caps the biggest
 * ONLINE_USERS (5,000 users, every name and status at its limit and every
 * byte escaped) is about 990,000 bytes: it fits.
 */
export const IM_CLIENT_MAX_LINE_BYTES = 1024 * 1024;

/** Longest user name, in UTF-8 bytes (SPEC 6.3). */
export const IM_MAX_USERNAME_BYTES = 32;

/** Longest status, in UTF-8 bytes (SPEC 6.3). */
export const IM_MAX_STATUS_BYTES = 64;

/** A conversation id as it travels: servers send integers; strings of digits are accepted too. */
export type ConversationId = number | string;

/** Messages a client sends. */
export type ImClientMessage =
  | { command: "REGISTER"; username: string; status: string }
  | { command: "STATUS"; status: string }
  | { command: "GOODBYE" }
  | { command: "INVITE"; users: string[] }
  | { command: "LIST_CONVERSATIONS" }
  | { command: "JOIN"; conversation: ConversationId }
  | { command: "SEND_MESSAGE"; conversation: ConversationId; message: string }
  | { command: "LEAVE"; conversation: ConversationId };

/** Messages a server sends. */
export type ImServerMessage =
  | { command: "ONLINE_USERS"; users: Record<string, string> }
  | { command: "INVITATION"; conversation: ConversationId; inviter: string }
  | { command: "CONVERSATIONS"; conversations: Record<string, string[]> }
  | { command: "MESSAGE"; conversation: ConversationId; sender: string; message: string }
  | { command: "ERROR"; text: string };

/** Any IM message. */
export type ImMessage = ImClientMessage | ImServerMessage;

/** The client commands, in the order of SPEC.md 2.2. */
export const IM_CLIENT_COMMANDS = [
  "REGISTER",
  "STATUS",
  "GOODBYE",
  "INVITE",
  "LIST_CONVERSATIONS",
  "JOIN",
  "SEND_MESSAGE",
  "LEAVE",
] as const;
/** The server commands. */
export const IM_SERVER_COMMANDS = [
  "ONLINE_USERS",
  "INVITATION",
  "CONVERSATIONS",
  "MESSAGE",
  "ERROR",
] as const;

/** A framed line that is not a valid message: unknown command, bad JSON, wrong arguments. */
export class ImMessageError extends TypeError {
  /** Makes the error; the message is what an `ERROR` reply says. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ImMessageError";
  }
}

const encoder = new TextEncoder();

/** The JSON argument of each message, in wire order. */
function argumentsOf(message: ImMessage): unknown {
  switch (message.command) {
    case "REGISTER":
      return [message.username, message.status];
    case "STATUS":
      return [message.status];
    case "GOODBYE":
    case "LIST_CONVERSATIONS":
      return undefined;
    case "INVITE":
      return message.users;
    case "JOIN":
    case "LEAVE":
      return [message.conversation];
    case "SEND_MESSAGE":
      return [message.conversation, message.message];
    case "ONLINE_USERS":
      return message.users;
    case "INVITATION":
      return [message.conversation, message.inviter];
    case "CONVERSATIONS":
      return message.conversations;
    case "MESSAGE":
      return [message.conversation, message.sender, message.message];
    case "ERROR":
      return message.text;
  }
}

/**
 * Encodes a message as one line.
 *
 * @example
 * ```ts
 * import { encodeIm } from "./im.ts";
 * const line = new TextDecoder().decode(encodeIm({ command: "REGISTER", username: "alice", status: "online" }));
 * console.assert(line === 'REGISTER ["alice","online"]\n');
 * ```
 */
export function encodeIm(message: ImMessage): Uint8Array {
  const args = argumentsOf(message);
  // JSON.stringify never emits a raw LF: newlines inside strings become \n escapes.
  return encoder.encode(
    args === undefined ? `${message.command}\n` : `${message.command} ${JSON.stringify(args)}\n`,
  );
}

/**
 * Splits a byte stream into lines (without LF), with a hard cap on length.
 *
 * @example
 * ```ts
 * import { ImLineDecoder } from "./im.ts";
 * const lines = new ImLineDecoder().decode(new TextEncoder().encode("GOODBYE\nSTATUS [\"away\"]\n"));
 * console.assert(lines.length === 2 && lines[0] === "GOODBYE");
 * ```
 */
export class ImLineDecoder implements FrameDecoder<string> {
  #queue = new ByteQueue();
  #max: number;
  #text = new TextDecoder();

  /** Makes a decoder; `maxLineBytes` defaults to 64 KiB. */
  constructor(options: { maxLineBytes?: number } = {}) {
    this.#max = options.maxLineBytes ?? IM_MAX_LINE_BYTES;
  }

  /** Feeds bytes; returns the complete lines. */
  decode(chunk: Uint8Array): string[] {
    this.#queue.append(chunk);
    const out: string[] = [];
    let nl: number;
    while ((nl = this.#queue.findLineEnd(this.#max)) !== -1) {
      out.push(this.#text.decode(this.#queue.view().subarray(0, nl)));
      this.#queue.skip(nl + 1);
    }
    return out;
  }

  /** Bytes of a partial line held (0 at a boundary). */
  get buffered(): number {
    return this.#queue.length;
  }

  /** Throws a `FrameError` if a line without its LF is left. */
  end(): void {
    assertNoPartialFrame(this.#queue.length, this.#queue.consumed);
  }
}

const isString = (v: unknown): v is string => typeof v === "string";
const isId = (v: unknown): v is ConversationId =>
  (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) ||
  (typeof v === "string" && /^\d+$/.test(v));

function expectArray(
  command: string,
  args: unknown,
  shape: string,
  check: (a: unknown[]) => boolean,
): unknown[] {
  if (!Array.isArray(args) || !check(args)) throw new ImMessageError(`${command} expects ${shape}`);
  return args;
}

function expectRecord(
  command: string,
  args: unknown,
  shape: string,
  check: (v: unknown) => boolean,
) {
  if (
    typeof args !== "object" || args === null || Array.isArray(args) ||
    !Object.values(args).every(check)
  ) {
    throw new ImMessageError(`${command} expects ${shape}`);
  }
  return args as Record<string, never>;
}

/**
 * Parses one line into a typed message, checking the argument shape.
 *
 * @throws {ImMessageError} naming the command and what was expected.
 * @example
 * ```ts
 * import { parseImLine } from "./im.ts";
 * const m = parseImLine('SEND_MESSAGE [3, "hi"]');
 * console.assert(m.command === "SEND_MESSAGE" && m.message === "hi");
 * ```
 */
export function parseImLine(line: string): ImMessage {
  const space = line.indexOf(" ");
  const command = space === -1 ? line : line.slice(0, space);
  const json = space === -1 ? undefined : line.slice(space + 1);
  if (!/^[A-Z_]+$/.test(command)) {
    throw new ImMessageError(
      command === "" ? "empty command" : `invalid command '${command.slice(0, 40)}'`,
    );
  }
  let args: unknown = undefined;
  if (json !== undefined) {
    try {
      args = JSON.parse(json);
    } catch (cause) {
      throw new ImMessageError(`invalid JSON after ${command}: ${(cause as Error).message}`, {
        cause,
      });
    }
  }
  const none = (shape: string) => {
    if (args !== undefined) throw new ImMessageError(`${command} expects ${shape}`);
  };
  switch (command) {
    case "REGISTER": {
      const [username, status] = expectArray(
        command,
        args,
        "[username, status] (two strings)",
        (a) => a.length === 2 && isString(a[0]) && isString(a[1]),
      ) as string[];
      if (!isUsername(username)) throw new ImMessageError(IM_TEXTS.badUsername);
      if (!isStatus(status)) throw new ImMessageError(IM_TEXTS.badStatus);
      return { command, username, status };
    }
    case "STATUS": {
      const [status] = expectArray(
        command,
        args,
        "[status] (one string)",
        (a) => a.length === 1 && isString(a[0]),
      ) as string[];
      if (!isStatus(status)) throw new ImMessageError(IM_TEXTS.badStatus);
      return { command, status };
    }
    case "GOODBYE":
    case "LIST_CONVERSATIONS":
      none("no arguments");
      return { command };
    case "INVITE": {
      const users = expectArray(
        command,
        args,
        "[user, user, ...] (one or more user names)",
        (a) => a.length > 0 && a.every(isString),
      );
      return { command, users: users as string[] };
    }
    case "JOIN":
    case "LEAVE": {
      const [conversation] = expectArray(
        command,
        args,
        "[convId] (one conversation id)",
        (a) => a.length === 1 && isId(a[0]),
      );
      return { command, conversation: conversation as ConversationId };
    }
    case "SEND_MESSAGE": {
      const [conversation, message] = expectArray(
        command,
        args,
        "[convId, message]",
        (a) => a.length === 2 && isId(a[0]) && isString(a[1]),
      );
      return { command, conversation: conversation as ConversationId, message: message as string };
    }
    case "ONLINE_USERS":
      return { command, users: expectRecord(command, args, "{username: status}", isString) };
    case "INVITATION": {
      const [conversation, inviter] = expectArray(
        command,
        args,
        "[convId, inviter]",
        (a) => a.length === 2 && isId(a[0]) && isString(a[1]),
      );
      return { command, conversation: conversation as ConversationId, inviter: inviter as string };
    }
    case "CONVERSATIONS":
      return {
        command,
        conversations: expectRecord(
          command,
          args,
          "{convId: [user, ...]}",
          (v) => Array.isArray(v) && v.every(isString),
        ),
      };
    case "MESSAGE": {
      const [conversation, sender, message] = expectArray(
        command,
        args,
        "[convId, sender, message]",
        (a) => a.length === 3 && isId(a[0]) && isString(a[1]) && isString(a[2]),
      );
      return {
        command,
        conversation: conversation as ConversationId,
        sender: sender as string,
        message: message as string,
      };
    }
    case "ERROR":
      if (!isString(args)) throw new ImMessageError(`ERROR expects "text" (one string)`);
      return { command, text: args };
    default:
      throw new ImMessageError(`unknown command ${command}`);
  }
}

/**
 * True for a user name others may see: 1 to 32 bytes of UTF-8, no whitespace,
 * no control or bidi characters (SPEC 6.3).
 *
 * @example
 * ```ts
 * import { isUsername } from "./im.ts";
 * console.assert(isUsername("alice") && !isUsername("al ice") && !isUsername("x".repeat(33)));
 * ```
 */
export function isUsername(name: string): boolean {
  return /^\S+$/.test(name) && isSafeName(name, { maxBytes: IM_MAX_USERNAME_BYTES });
}

/**
 * True for a status others may see: at most 64 bytes of UTF-8 with no control
 * or bidi characters (SPEC 6.3). It may be empty and may hold spaces.
 *
 * @example
 * ```ts
 * import { isStatus } from "./im.ts";
 * console.assert(isStatus("out to lunch") && isStatus("") && !isStatus("x\u202e"));
 * ```
 */
export function isStatus(status: string): boolean {
  return isSafeName(status, { maxBytes: IM_MAX_STATUS_BYTES });
}

/** Default port of the IM server. */
export const IM_PORT = 6666;

/** Default `--max-users`: registered users at once (SPEC 6.4). */
export const IM_MAX_USERS = 5000;

/** Default `--max-conversations`: conversations one user may be a member of (SPEC 6.4). */
export const IM_MAX_CONVERSATIONS = 100;

/** Default `--presence-coalesce`: presence changes within this window go out as one ONLINE_USERS. */
export const IM_PRESENCE_COALESCE_MS = 200;

/** The IM server's ERROR texts. */
export const IM_TEXTS = {
  registerFirst: "REGISTER first: send REGISTER [username, status]",
  nameTaken: (name: string): string => `username ${name} is already taken`,
  alreadyRegistered: (name: string): string => `already registered as ${name}`,
  notOnline: (name: string): string => `cannot invite ${name}: not online`,
  noConversation: (id: ConversationId): string => `no conversation ${id}`,
  notInvited: (id: ConversationId): string => `you are not invited to conversation ${id}`,
  notMember: (id: ConversationId): string => `you are not a member of conversation ${id}`,
  badUsername:
    `username must be 1 to ${IM_MAX_USERNAME_BYTES} bytes of UTF-8 with no spaces or control characters`,
  badStatus:
    `status must be at most ${IM_MAX_STATUS_BYTES} bytes of UTF-8 with no control characters`,
  serverFull: (max: number): string => `server full: ${max} users are online, the most allowed`,
  tooManyConversations: (max: number): string =>
    `you are a member of ${max} conversations, the most allowed: leave one first`,
  conversationsCut: (shown: number, total: number): string =>
    `CONVERSATIONS lists ${shown} of ${total} conversations: the rest do not fit in one reply`,
  shuttingDown: "server shutting down",
  registerTimeout: (seconds: number): string => `no REGISTER within ${seconds} seconds`,
} as const;
