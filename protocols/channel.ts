/**
 * Channel chat framing (seed 004): fixed 200-byte frames, both directions.
 *
 * ```
 * +-------------------------------------------+----------------------+
 * | message text, UTF-8                       | spaces (0x20) to 200 |
 * +-------------------------------------------+----------------------+
 * |<------------------------ 200 bytes ----------------------------->|
 * ```
 *
 * The receiver strips trailing spaces. A message longer than 200 bytes is
 * refused by the encoder (a `RangeError`), never truncated. There is nothing
 * to get wrong in the framing itself: any 200 bytes are a frame.
 *
 * Control messages start with `/`: `/join <channel>`, `/create <channel>`,
 * `/list`. The server's reply texts are the constants below.
 *
 * @module
 */

import { assertNoPartialFrame, type FrameDecoder } from "./frames.ts";

/** Size of every channel chat frame, in bytes. */
export const CHANNEL_FRAME_BYTES = 200;

const SPACE = 0x20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reply and notice texts of the channel server, exactly as the original course defines them. */
export const CHANNEL_TEXTS = {
  /** `{0}` is the command word as typed, e.g. `/foo`. */
  invalidControlMessage: (command: string): string =>
    `${command} is not a valid control message. Valid messages are /create, /list, and /join.`,
  noChannelExists: (channel: string): string =>
    `No channel named ${channel} exists. Try '/create ${channel}'?`,
  joinRequiresName: "/join command must be followed by the name of a channel to join.",
  joined: (name: string): string => `${name} has joined`,
  left: (name: string): string => `${name} has left`,
  channelExists: (channel: string): string =>
    `Room ${channel} already exists, so cannot be created.`,
  createRequiresName: "/create command must be followed by the name of a channel to create",
  notInChannel: "Not currently in any channel. Must join a channel before sending messages.",
  /** Client-side: the connection could not be made. */
  unableToConnect: (host: string, port: string | number): string =>
    `Unable to connect to ${host}:${port}`,
  /** Client-side: the server closed the connection. */
  serverDisconnected: (host: string, port: string | number): string =>
    `Server at ${host}:${port} has disconnected`,
} as const;

/**
 * Encodes one message as a 200-byte space-padded frame, or returns
 * `undefined` when its UTF-8 text is longer than 200 bytes (no exception, so a
 * server can check and encode a chat in one step).
 *
 * @example
 * ```ts
 * import { tryEncodeChannelFrame } from "./channel.ts";
 * console.assert(tryEncodeChannelFrame("hi")?.length === 200);
 * console.assert(tryEncodeChannelFrame("x".repeat(201)) === undefined);
 * ```
 */
export function tryEncodeChannelFrame(text: string): Uint8Array | undefined {
  const frame = new Uint8Array(CHANNEL_FRAME_BYTES);
  const { read, written } = encoder.encodeInto(text, frame);
  if (read < text.length) return undefined;
  frame.fill(SPACE, written);
  return frame;
}

/**
 * Encodes one message as a 200-byte space-padded frame.
 *
 * @throws {RangeError} when the UTF-8 text is longer than 200 bytes.
 * @example
 * ```ts
 * import { CHANNEL_FRAME_BYTES, encodeChannelFrame } from "./channel.ts";
 * const frame = encodeChannelFrame("/list");
 * console.assert(frame.length === CHANNEL_FRAME_BYTES && frame[5] === 0x20);
 * ```
 */
export function encodeChannelFrame(text: string): Uint8Array {
  const frame = tryEncodeChannelFrame(text);
  if (!frame) {
    throw new RangeError(
      `Cannot encode frame: message is ${
        channelTextBytes(text)
      } bytes, limit is ${CHANNEL_FRAME_BYTES}`,
    );
  }
  return frame;
}

const ELLIPSIS = encoder.encode("...");

/**
 * Encodes a server reply that may quote what a client typed (an unknown
 * command, a channel name): when it would not fit, it is cut at a character
 * boundary and ends with `...`, so the reply is never refused and never
 * silently shortened.
 *
 * @example
 * ```ts
 * import { decodeChannelFrame, encodeChannelReply } from "./channel.ts";
 * const reply = decodeChannelFrame(encodeChannelReply(`No channel named ${"x".repeat(300)}`));
 * console.assert(reply.length === 200 && reply.endsWith("..."));
 * ```
 */
export function encodeChannelReply(text: string): Uint8Array {
  const frame = tryEncodeChannelFrame(text);
  if (frame) return frame;
  const cut = new Uint8Array(CHANNEL_FRAME_BYTES);
  const { written } = encoder.encodeInto(
    text,
    cut.subarray(0, CHANNEL_FRAME_BYTES - ELLIPSIS.length),
  );
  cut.set(ELLIPSIS, written);
  cut.fill(SPACE, written + ELLIPSIS.length);
  return cut;
}

/**
 * Byte length of a text in a channel frame; more than {@link CHANNEL_FRAME_BYTES}
 * does not fit.
 *
 * @example
 * ```ts
 * import { channelTextBytes } from "./channel.ts";
 * console.assert(channelTextBytes("é") === 2);
 * ```
 */
export function channelTextBytes(text: string): number {
  return encoder.encode(text).length;
}

/**
 * Decodes one 200-byte frame: UTF-8 text with trailing spaces stripped.
 *
 * @example
 * ```ts
 * import { decodeChannelFrame, encodeChannelFrame } from "./channel.ts";
 * console.assert(decodeChannelFrame(encodeChannelFrame("hi  there")) === "hi  there");
 * ```
 */
export function decodeChannelFrame(frame: Uint8Array): string {
  let end = frame.length;
  while (end > 0 && frame[end - 1] === SPACE) end--;
  return decoder.decode(frame.subarray(0, end));
}

/**
 * Incremental decoder of channel frames: accepts chunks of any size and
 * returns each completed frame's text.
 *
 * @example
 * ```ts
 * import { ChannelDecoder, encodeChannelFrame } from "./channel.ts";
 * const frame = encodeChannelFrame("hello");
 * const d = new ChannelDecoder();
 * console.assert(d.decode(frame.subarray(0, 50)).length === 0);
 * console.assert(d.decode(frame.subarray(50))[0] === "hello");
 * ```
 */
export class ChannelDecoder implements FrameDecoder<string> {
  // Allocated on the first partial frame: most reads end on a frame boundary,
  // and an idle connection then holds no frame buffer at all.
  #partial?: Uint8Array;
  #held = 0;
  #offset = 0;

  /** Feeds bytes; returns the texts of the frames completed. */
  decode(chunk: Uint8Array): string[] {
    const out: string[] = [];
    let i = 0;
    if (this.#held > 0) {
      const partial = this.#partial!;
      const need = CHANNEL_FRAME_BYTES - this.#held;
      const take = Math.min(need, chunk.length);
      partial.set(chunk.subarray(0, take), this.#held);
      this.#held += take;
      i = take;
      if (this.#held < CHANNEL_FRAME_BYTES) {
        this.#offset += chunk.length;
        return out;
      }
      out.push(decodeChannelFrame(partial));
      this.#held = 0;
    }
    for (; i + CHANNEL_FRAME_BYTES <= chunk.length; i += CHANNEL_FRAME_BYTES) {
      out.push(decodeChannelFrame(chunk.subarray(i, i + CHANNEL_FRAME_BYTES)));
    }
    if (i < chunk.length) {
      (this.#partial ??= new Uint8Array(CHANNEL_FRAME_BYTES)).set(chunk.subarray(i));
      this.#held = chunk.length - i;
    }
    this.#offset += chunk.length;
    return out;
  }

  /** Bytes of a partial frame held (0 at a boundary). */
  get buffered(): number {
    return this.#held;
  }

  /** Throws a `FrameError` if a partial frame is buffered. */
  end(): void {
    assertNoPartialFrame(this.#held, this.#offset - this.#held);
  }
}

/** A parsed message from a channel client (after its name). */
export type ChannelCommand =
  | { kind: "join"; channel: string }
  | { kind: "create"; channel: string }
  | { kind: "list" }
  | { kind: "invalid"; command: string }
  | { kind: "chat"; text: string };

/**
 * Parses a client message: control messages start with `/`. The channel
 * argument is the rest of the line after the command word and its spaces, so
 * `/join 168 tas` names the channel `168 tas`, as in the original transcript.
 * An empty argument gives `channel: ""`.
 *
 * @example
 * ```ts
 * import { parseChannelCommand } from "./channel.ts";
 * console.assert(parseChannelCommand("/join 168 tas").kind === "join");
 * console.assert(parseChannelCommand("hello").kind === "chat");
 * ```
 */
export function parseChannelCommand(text: string): ChannelCommand {
  if (!text.startsWith("/")) return { kind: "chat", text };
  const space = text.indexOf(" ");
  const command = space === -1 ? text : text.slice(0, space);
  const argument = space === -1 ? "" : text.slice(space + 1).trim();
  switch (command) {
    case "/join":
      return { kind: "join", channel: argument };
    case "/create":
      return { kind: "create", channel: argument };
    case "/list":
      return { kind: "list" };
    default:
      return { kind: "invalid", command };
  }
}

/** Default port of the channel server. */
export const CHANNEL_PORT = 55555;

/** Longest client name, in UTF-8 bytes (so notices like `NAME has joined` fit a frame). */
export const MAX_NAME_BYTES = 64;

/** Longest channel name, in UTF-8 bytes (so error texts naming it fit a frame). */
export const MAX_CHANNEL_BYTES = 64;

/** Texts of the decisions Parley made where the original is silent. */
export const CHANNEL_SERVER_TEXTS = {
  emptyName: "A name is required: the first message must be your name.",
  nameTooLong: `Names are at most ${MAX_NAME_BYTES} bytes.`,
  /** SPEC 6.3: the name would reach other people with control characters, or is not UTF-8. */
  badName: "Names must be valid UTF-8 with no control characters: send another name.",
  channelTooLong: `Channel names are at most ${MAX_CHANNEL_BYTES} bytes.`,
  /** SPEC 6.3, for `/create` and `/join`. */
  badChannelName: "Channel names must be valid UTF-8 with no control characters.",
  chatTooLong: (bytes: number): string =>
    `Message not sent: with your name it is ${bytes} bytes, and a message is at most ${CHANNEL_FRAME_BYTES}.`,
  /** Sent before closing a connection that gave no usable name within `--register-timeout`. */
  nameTimeout: (seconds: number): string => `No name received within ${seconds} seconds: closing.`,
  /** The last frame of a `/list` reply that was cut to fit the asker's send queue. */
  listCapped: (more: number): string =>
    `...and ${more} more channels (the list is cut to fit your send queue)`,
} as const;

/** Options of {@link listFrames}. */
export interface ListFramesOptions {
  /**
   * Most frames the reply may take, the note that it was cut included
   * (no limit when absent; at least 2 are always allowed).
   */
  maxFrames?: number;
}

/**
 * The `/list` reply: names joined by `\n`, in as many frames as they need
 * (one, usually), split between names. With `maxFrames`, names that do not
 * fit are left out and the last frame is {@link CHANNEL_SERVER_TEXTS.listCapped}.
 *
 * @example
 * ```ts
 * import { decodeChannelFrame, listFrames } from "./channel.ts";
 * console.assert(decodeChannelFrame(listFrames(["a", "b"])[0]) === "a\nb");
 * const names = Array.from({ length: 100 }, (_, i) => `room-${i}`);
 * const capped = listFrames(names, { maxFrames: 3 }).map(decodeChannelFrame);
 * console.assert(capped.length === 3 && capped[2].startsWith("...and "));
 * ```
 */
export function listFrames(
  names: readonly string[],
  options: ListFramesOptions = {},
): Uint8Array[] {
  const maxFrames = Math.max(2, options.maxFrames ?? Infinity);
  const frames: string[] = [];
  let current = "";
  for (let i = 0; i < names.length; i++) {
    const candidate = current === "" ? names[i] : `${current}\n${names[i]}`;
    if (current === "" || channelTextBytes(candidate) <= CHANNEL_FRAME_BYTES) {
      current = candidate;
      continue;
    }
    // `current` is full. If the next frame must be the last one, it holds the rest or the note.
    frames.push(current);
    if (frames.length === maxFrames - 1) {
      const rest = names.slice(i).join("\n");
      const fits = channelTextBytes(rest) <= CHANNEL_FRAME_BYTES;
      frames.push(fits ? rest : CHANNEL_SERVER_TEXTS.listCapped(names.length - i));
      return frames.map(encodeChannelReply);
    }
    current = names[i];
  }
  frames.push(current);
  return frames.map(encodeChannelReply);
}
