/**
 * Clemson Relay Chat framing (seed 003, SPEC.md 3.1): binary, big-endian, no
 * delimiter; each message's header says how long it is.
 *
 * ```
 * type  message              after the type byte                                          header
 * 0x00  server registration  source u32, last_hop u32, name_len u8, info_len u16, name, info  12
 * 0x80  client registration  source u32, last_hop u32, name_len u8, info_len u16, name, info  12
 * 0x01  status               source u32, destination u32, code u16, len u32, content          15
 * 0x81  client chat          source u32, destination u32, len u32, content                    13
 * 0x82  client quit          source u32, len u32, content                                      9
 * 0x02  server quit          source u32, replacement u32, len u32, content                    13
 * ```
 *
 * Strings are UTF-8 and lengths count bytes. An unknown type byte, or a name
 * or info that is not valid UTF-8 or holds a control character (SPEC 6.3,
 * 6.6), is a `FrameError`; a content length over the decoder's limit (default
 * 64 KiB) is a `FrameTooLargeError`. Chat, status and quit contents may hold
 * anything (invalid UTF-8 decodes to U+FFFD; routing forwards the wire bytes). Encoders refuse values that do not fit their field
 * (`RangeError`), never truncate.
 *
 * @module
 */

import { FrameError, FrameTooLargeError } from "./errors.ts";
import { assertNoPartialFrame, ByteQueue, type FrameDecoder } from "./frames.ts";

/** Type bytes. */
export const CRC_TYPES = {
  serverRegistration: 0x00,
  status: 0x01,
  serverQuit: 0x02,
  clientRegistration: 0x80,
  chat: 0x81,
  clientQuit: 0x82,
} as const;

/** Default limit of a chat, status or quit content, in bytes. */
export const CRC_MAX_CONTENT_BYTES = 64 * 1024;

/** Status codes used by the CRC node. */
export const CRC_STATUS = { welcome: 0, unknownId: 1, duplicateId: 2 } as const;

/** A registration (server or client). */
export interface CrcRegistration {
  /** `server_registration` or `client_registration`. */
  kind: "server_registration" | "client_registration";
  /** The registering machine. */
  source: number;
  /** The machine that last forwarded it (0 from a brand-new neighbour). */
  lastHop: number;
  /** Name (at most 255 bytes). */
  name: string;
  /** Info (at most 65535 bytes). */
  info: string;
}

/** Any CRC message. */
export type CrcMessage =
  | CrcRegistration
  | { kind: "status"; source: number; destination: number; code: number; content: string }
  | { kind: "chat"; source: number; destination: number; content: string }
  | { kind: "client_quit"; source: number; content: string }
  | { kind: "server_quit"; source: number; replacement: number; content: string };

/** The `kind` of each message. */
export type CrcKind = CrcMessage["kind"];

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Names and infos: invalid UTF-8 throws, and a BOM is kept so the text re-encodes to the same bytes. */
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** C0, DEL, C1 and the bidi controls (SPEC 6.3): never allowed in a name or info. */
// deno-lint-ignore no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/**
 * Why `text` may not be a CRC name or info (SPEC 6.3), or undefined when it may:
 * it must hold no control characters and encode within `maxBytes`.
 *
 * @example
 * ```ts
 * import { crcTextProblem } from "./crc.ts";
 * console.assert(crcTextProblem("alice", 255) === undefined);
 * console.assert(crcTextProblem("a\u0007", 255) !== undefined);
 * ```
 */
export function crcTextProblem(text: string, maxBytes: number): string | undefined {
  if (CONTROL_CHARACTERS.test(text)) return "contains a control character";
  const length = encoder.encode(text).length;
  if (length > maxBytes) return `is ${length} bytes, limit is ${maxBytes}`;
  return undefined;
}

function u32(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`Cannot encode message: ${field} ${value} does not fit in 32 bits`);
  }
  return value;
}

function bytesOf(text: string, field: string, max: number): Uint8Array {
  const bytes = encoder.encode(text);
  if (bytes.length > max) {
    throw new RangeError(
      `Cannot encode message: ${field} is ${bytes.length} bytes, limit is ${max}`,
    );
  }
  return bytes;
}

/**
 * Encodes one message.
 *
 * @throws {RangeError} when a value does not fit its field.
 * @example
 * ```ts
 * import { encodeCrc } from "./crc.ts";
 * const bytes = encodeCrc({ kind: "chat", source: 1, destination: 2, content: "hi" });
 * console.assert(bytes.length === 13 + 2 && bytes[0] === 0x81);
 * ```
 */
export function encodeCrc(message: CrcMessage): Uint8Array {
  switch (message.kind) {
    case "server_registration":
    case "client_registration": {
      const name = bytesOf(message.name, "name", 0xff);
      const info = bytesOf(message.info, "info", 0xffff);
      const out = new Uint8Array(12 + name.length + info.length);
      const view = new DataView(out.buffer);
      out[0] = message.kind === "server_registration"
        ? CRC_TYPES.serverRegistration
        : CRC_TYPES.clientRegistration;
      view.setUint32(1, u32(message.source, "source"));
      view.setUint32(5, u32(message.lastHop, "last_hop"));
      out[9] = name.length;
      view.setUint16(10, info.length);
      out.set(name, 12);
      out.set(info, 12 + name.length);
      return out;
    }
    case "status": {
      if (!Number.isInteger(message.code) || message.code < 0 || message.code > 0xffff) {
        throw new RangeError(
          `Cannot encode message: status code ${message.code} does not fit in 16 bits`,
        );
      }
      const content = bytesOf(message.content, "content", 0xffffffff);
      const out = new Uint8Array(15 + content.length);
      const view = new DataView(out.buffer);
      out[0] = CRC_TYPES.status;
      view.setUint32(1, u32(message.source, "source"));
      view.setUint32(5, u32(message.destination, "destination"));
      view.setUint16(9, message.code);
      view.setUint32(11, content.length);
      out.set(content, 15);
      return out;
    }
    case "chat":
    case "server_quit": {
      const content = bytesOf(message.content, "content", 0xffffffff);
      const out = new Uint8Array(13 + content.length);
      const view = new DataView(out.buffer);
      out[0] = message.kind === "chat" ? CRC_TYPES.chat : CRC_TYPES.serverQuit;
      view.setUint32(1, u32(message.source, "source"));
      view.setUint32(
        5,
        message.kind === "chat"
          ? u32(message.destination, "destination")
          : u32(message.replacement, "replacement"),
      );
      view.setUint32(9, content.length);
      out.set(content, 13);
      return out;
    }
    case "client_quit": {
      const content = bytesOf(message.content, "content", 0xffffffff);
      const out = new Uint8Array(9 + content.length);
      const view = new DataView(out.buffer);
      out[0] = CRC_TYPES.clientQuit;
      view.setUint32(1, u32(message.source, "source"));
      view.setUint32(5, content.length);
      out.set(content, 9);
      return out;
    }
  }
}

/** Fixed header size of each type byte (the type byte included). */
const HEADER_BYTES: Record<number, number> = {
  [CRC_TYPES.serverRegistration]: 12,
  [CRC_TYPES.clientRegistration]: 12,
  [CRC_TYPES.status]: 15,
  [CRC_TYPES.chat]: 13,
  [CRC_TYPES.clientQuit]: 9,
  [CRC_TYPES.serverQuit]: 13,
};

/** Limits of a {@link CrcDecoder}. */
export interface CrcDecoderOptions {
  /** Largest chat, status or quit content in bytes (default 64 KiB). */
  maxContentBytes?: number;
}

/** Options of a {@link CrcFrameDecoder}. */
export interface CrcFrameDecoderOptions extends CrcDecoderOptions {
  /**
   * A chat's `content` is decoded when first read, not at decode time (default
   * false): a node forwards a chat's bytes and never reads its content. Such a
   * chat is then a {@link CrcLazyChat} (its `content` a getter), not a plain object.
   */
  lazyChatContent?: boolean;
}

/**
 * A chat whose content is decoded on first use (see
 * {@link CrcFrameDecoderOptions.lazyChatContent}). One class, so every such
 * chat has the same shape and its getter is on the prototype: no closure per chat.
 */
export class CrcLazyChat {
  /** Always `"chat"`. */
  readonly kind = "chat" as const;
  /** The sender's id. */
  readonly source: number;
  /** The addressee's id. */
  readonly destination: number;
  #bytes: Uint8Array;
  #content?: string;

  /** A chat over its frame's bytes (`bytes` is the whole frame). */
  constructor(bytes: Uint8Array) {
    this.source = u32At(bytes, 1);
    this.destination = u32At(bytes, 5);
    this.#bytes = bytes;
  }

  /** The content, decoded (and kept) on first use. */
  get content(): string {
    return this.#content ??= looseText(this.#bytes.subarray(13));
  }
}

/**
 * Incremental CRC decoder: frames split across reads, or several in one read,
 * decode the same. Use {@link CrcFrameDecoder} when the wire bytes are needed
 * too (to forward a frame unchanged).
 *
 * @example
 * ```ts
 * import { CrcDecoder, encodeCrc } from "./crc.ts";
 * const bytes = encodeCrc({ kind: "client_quit", source: 7, content: "bye" });
 * const d = new CrcDecoder();
 * console.assert(d.decode(bytes.subarray(0, 4)).length === 0);
 * console.assert(d.decode(bytes.subarray(4))[0].kind === "client_quit");
 * ```
 */
export class CrcDecoder implements FrameDecoder<CrcMessage> {
  #frames: CrcFrameDecoder;

  /** Makes a decoder with the given limits. */
  constructor(options: CrcDecoderOptions = {}) {
    this.#frames = new CrcFrameDecoder(options);
  }

  /** Feeds bytes; returns the messages completed. */
  decode(chunk: Uint8Array): CrcMessage[] {
    return this.#frames.decode(chunk).map((f) => f.message);
  }

  /** Bytes of a partial message held (0 at a boundary). */
  get buffered(): number {
    return this.#frames.buffered;
  }

  /** Throws a `FrameError` if a partial message is buffered. */
  end(): void {
    this.#frames.end();
  }
}

/**
 * A decoded message with its exact bytes (for forwarding a frame unchanged).
 * The frames of one read share one copy of its bytes.
 */
export interface CrcFrame {
  /** The message. */
  message: CrcMessage;
  /** Its bytes on the wire. */
  bytes: Uint8Array;
}

/**
 * Like {@link CrcDecoder}, but each message comes with its wire bytes.
 *
 * @example
 * ```ts
 * import { CrcFrameDecoder, encodeCrc } from "./crc.ts";
 * const bytes = encodeCrc({ kind: "chat", source: 1, destination: 2, content: "x" });
 * const [frame] = new CrcFrameDecoder().decode(bytes);
 * console.assert(frame.bytes.length === bytes.length);
 * ```
 */
export class CrcFrameDecoder implements FrameDecoder<CrcFrame> {
  #queue = new ByteQueue();
  #maxContent: number;
  #lazyChats: boolean;

  /** Makes a decoder with the given limits. */
  constructor(options: CrcFrameDecoderOptions = {}) {
    this.#maxContent = options.maxContentBytes ?? CRC_MAX_CONTENT_BYTES;
    this.#lazyChats = options.lazyChatContent ?? false;
  }

  /** Feeds bytes; returns the frames completed. */
  decode(chunk: Uint8Array): CrcFrame[] {
    this.#queue.append(chunk);
    const view = this.#queue.view();
    const base = this.#queue.consumed;
    const starts: number[] = [];
    let pos = 0;
    while (pos < view.length) {
      const type = view[pos];
      const header = HEADER_BYTES[type];
      if (header === undefined) {
        throw new FrameError(`unknown message type 0x${type.toString(16).padStart(2, "0")}`, {
          offset: base + pos,
        });
      }
      if (view.length - pos < header) break;
      let total: number;
      if (type === CRC_TYPES.serverRegistration || type === CRC_TYPES.clientRegistration) {
        total = 12 + view[pos + 9] + u16At(view, pos + 10);
      } else {
        const length = u32At(view, pos + header - 4);
        if (length > this.#maxContent) {
          throw new FrameTooLargeError(
            `declared length ${length} exceeds limit of ${this.#maxContent} bytes`,
            { offset: base + pos },
          );
        }
        total = header + length;
      }
      if (view.length - pos < total) break;
      starts.push(pos);
      pos += total;
    }
    if (pos === 0) return [];
    // One copy for every frame completed by this chunk (frames never alias the caller's buffer).
    const block = view.slice(0, pos);
    this.#queue.skip(pos);
    const out: CrcFrame[] = new Array(starts.length);
    for (let k = 0; k < starts.length; k++) {
      const bytes = block.subarray(starts[k], k + 1 < starts.length ? starts[k + 1] : pos);
      const message = this.#lazyChats && bytes[0] === CRC_TYPES.chat
        ? new CrcLazyChat(bytes)
        : parse(bytes, base + starts[k]);
      out[k] = { message, bytes };
    }
    return out;
  }

  /** Bytes of a partial message held (0 at a boundary). */
  get buffered(): number {
    return this.#queue.length;
  }

  /** Throws a `FrameError` if a partial message is buffered. */
  end(): void {
    assertNoPartialFrame(this.#queue.length, this.#queue.consumed);
  }
}

/** Decodes a name or info strictly: not UTF-8, or a control character, is a framing error. */
/**
 * Short printable ASCII (the common case) without a TextDecoder call, which
 * costs more than the rest of a frame's decoding; undefined for anything else.
 */
function printableAscii(bytes: Uint8Array): string | undefined {
  if (bytes.length > 256) return undefined;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b < 0x20 || b > 0x7e) return undefined;
  }
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/**
 * Decodes content: anything goes (invalid UTF-8 becomes U+FFFD). The plain
 * TextDecoder is as fast as the ASCII loop from about 32 bytes on; the strict
 * (fatal) one, for names, is several times slower, hence the fast path there.
 */
function looseText(bytes: Uint8Array): string {
  return (bytes.length < 32 ? printableAscii(bytes) : undefined) ?? decoder.decode(bytes);
}

function strictText(bytes: Uint8Array, field: string, offset: number): string {
  const ascii = printableAscii(bytes);
  if (ascii !== undefined) return ascii;
  let text: string;
  try {
    text = strictDecoder.decode(bytes);
  } catch (cause) {
    throw new FrameError(`${field} is not valid UTF-8`, { offset, cause });
  }
  if (CONTROL_CHARACTERS.test(text)) {
    throw new FrameError(`${field} contains a control character`, { offset });
  }
  return text;
}

function u16At(b: Uint8Array, at: number): number {
  return (b[at] << 8) | b[at + 1];
}

function u32At(b: Uint8Array, at: number): number {
  return b[at] * 0x1000000 + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
}

function parse(bytes: Uint8Array, offset: number): CrcMessage {
  const text = (from: number, to: number) => looseText(bytes.subarray(from, to));
  switch (bytes[0]) {
    case CRC_TYPES.serverRegistration:
    case CRC_TYPES.clientRegistration: {
      const nameEnd = 12 + bytes[9];
      return {
        kind: bytes[0] === CRC_TYPES.serverRegistration
          ? "server_registration"
          : "client_registration",
        source: u32At(bytes, 1),
        lastHop: u32At(bytes, 5),
        name: strictText(bytes.subarray(12, nameEnd), "name", offset),
        info: strictText(bytes.subarray(nameEnd), "info", offset),
      };
    }
    case CRC_TYPES.status:
      return {
        kind: "status",
        source: u32At(bytes, 1),
        destination: u32At(bytes, 5),
        code: u16At(bytes, 9),
        content: text(15, bytes.length),
      };
    case CRC_TYPES.chat:
      return {
        kind: "chat",
        source: u32At(bytes, 1),
        destination: u32At(bytes, 5),
        content: text(13, bytes.length),
      };
    case CRC_TYPES.serverQuit:
      return {
        kind: "server_quit",
        source: u32At(bytes, 1),
        replacement: u32At(bytes, 5),
        content: text(13, bytes.length),
      };
    default:
      return { kind: "client_quit", source: u32At(bytes, 1), content: text(9, bytes.length) };
  }
}

/** Default port of a CRC node. */
export const CRC_PORT = 3600;

/** Status texts of the node, exactly as SPEC.md 3.2 gives them. */
export const CRC_TEXTS = {
  duplicateServer: (id: number): string => `A machine has already registered with ID ${id}`,
  duplicateClient: (id: number): string => `Someone has already registered with ID ${id}`,
  welcome: (name: string): string => `Welcome to the Clemson Relay Chat network ${name}`,
  unknownId: (id: number): string => `Unknown ID ${id}`,
  /** Refusal of a registration when the node already knows `--max-hosts` hosts. */
  tooManyHosts: (limit: number): string => `This network already has ${limit} hosts`,
  /** Content of the quits a node sends for hosts lost with a link. */
  connectionLost: "connection lost",
} as const;

/** A random non-zero 32-bit id. */
export function randomCrcId(): number {
  const [n] = crypto.getRandomValues(new Uint32Array(1));
  return n === 0 ? 1 : n;
}
