/**
 * The timestamp echo protocol of the socket-basics lessons (seed 002).
 *
 * ```
 * client -> server   <data>                  any bytes (one TCP/Unix read, or one datagram)
 * server -> client   "[" ctime "] " <data>   ctime like "Tue Nov  7 10:00:00 2017"
 * ```
 *
 * There are no frames: the server answers each chunk it reads (each datagram
 * over UDP) with the same bytes behind a timestamp. The interactive client
 * ends each line with LF and reads the reply up to the LF.
 *
 * @module
 */

import type { FrameDecoder } from "./frames.ts";

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const encoder = new TextEncoder();

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/**
 * Formats a date like C's `ctime()` (and Python's `time.ctime()`), in local time,
 * without the trailing newline: `Tue Nov  7 10:00:00 2017`.
 *
 * @example
 * ```ts
 * import { formatCtime } from "./timestamp.ts";
 * const text = formatCtime(new Date(2017, 10, 7, 10, 0, 0));
 * console.assert(text === "Tue Nov  7 10:00:00 2017");
 * ```
 */
export function formatCtime(date: Date): string {
  const day = String(date.getDate()).padStart(2, " ");
  const time = `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
  return `${DAYS[date.getDay()]} ${MONTHS[date.getMonth()]} ${day} ${time} ${date.getFullYear()}`;
}

/**
 * Encodes the server's reply to one chunk: `[<ctime>] <data>`.
 *
 * @example
 * ```ts
 * import { encodeTimestampReply } from "./timestamp.ts";
 * const reply = encodeTimestampReply(new TextEncoder().encode("hello"), new Date(2017, 10, 7, 10));
 * console.assert(new TextDecoder().decode(reply) === "[Tue Nov  7 10:00:00 2017] hello");
 * ```
 */
export function encodeTimestampReply(data: Uint8Array, date: Date): Uint8Array {
  const prefix = encoder.encode(`[${formatCtime(date)}] `);
  const out = new Uint8Array(prefix.length + data.length);
  out.set(prefix);
  out.set(data, prefix.length);
  return out;
}

/** Pattern of a reply line: group 1 is the ctime, group 2 the echoed data. */
export const TIMESTAMP_REPLY_PATTERN: RegExp =
  /^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})\] ([\s\S]*)$/;

/** Default port of the timestamp servers (TCP and UDP). */
export const TIMESTAMP_PORT = 21567;

/** Default Unix socket path of the timestamp server. */
export const TIMESTAMP_SOCKET_PATH = "/tmp/parley-timestamp.sock";

/** The transports the timestamp server speaks. */
export const TIMESTAMP_TRANSPORTS = ["tcp", "udp", "unix"] as const;

/** One of {@link TIMESTAMP_TRANSPORTS}. */
export type TimestampTransport = typeof TIMESTAMP_TRANSPORTS[number];

/**
 * The "decoder" of the timestamp protocol, whose unit is a chunk, not a frame:
 * every read is one complete message (a copy of it), so nothing is ever
 * partial, the frame timeout never applies, and every read counts as activity.
 *
 * @example
 * ```ts
 * import { TimestampChunkDecoder } from "./timestamp.ts";
 * const d = new TimestampChunkDecoder();
 * const [chunk] = d.decode(new TextEncoder().encode("hi"));
 * console.assert(chunk.length === 2 && d.buffered === 0);
 * ```
 */
export class TimestampChunkDecoder implements FrameDecoder<Uint8Array> {
  /** Always 0: a chunk is never partial. */
  readonly buffered = 0;

  /** Returns the chunk itself, copied (the caller may reuse its read buffer). */
  decode(chunk: Uint8Array): Uint8Array[] {
    return [chunk.slice()];
  }

  /** Nothing can be left over. */
  end(): void {}
}
