/**
 * The framing core: the contract every Parley decoder follows, and the glue
 * that feeds a decoder from a `ReadableStream` of bytes.
 *
 * A decoder is pure: bytes in, frames out, no I/O. It accepts chunks of any
 * size (one byte, or many frames at once) and keeps partial frames between
 * calls. Frames it returns never alias the chunk it was given, so the caller
 * may reuse its read buffer.
 *
 * @module
 */

import { FrameError, FrameTooLargeError } from "./errors.ts";

/** An incremental decoder of one wire format. */
export interface FrameDecoder<T> {
  /** Feed any number of bytes (even one); returns the frames completed, in order. */
  decode(chunk: Uint8Array): T[];
  /** End of input: throws {@link FrameError} if a partial frame is left. */
  end(): void;
  /**
   * Bytes of a partial frame held (0 at a frame boundary). Optional: the read
   * path uses it to time a frame from its first byte (SPEC 6.2).
   */
  readonly buffered?: number;
}

/** Options for {@link readFrames}. */
export interface ReadFramesOptions {
  /** Size of the read buffer for byte streams (default 64 KiB). */
  bufferSize?: number;
}

/** Default size of the read buffer used by {@link readFrames}. */
export const READ_BUFFER_BYTES = 64 * 1024;

/**
 * Reads frames from a stream of bytes until it ends.
 *
 * Byte streams (like Deno's `conn.readable`) are read with a BYOB reader into
 * one reused buffer; other streams with a default reader. At the end of the
 * stream the decoder's `end()` is called, so a truncated frame throws.
 *
 * @example
 * ```ts
 * import { readFrames } from "./frames.ts";
 * import { ChannelDecoder, encodeChannelFrame } from "./channel.ts";
 * const stream = ReadableStream.from([encodeChannelFrame("hi"), encodeChannelFrame("there")]);
 * const frames = await Array.fromAsync(readFrames(stream, new ChannelDecoder()));
 * console.assert(frames.join(",") === "hi,there");
 * ```
 */
export async function* readFrames<T>(
  readable: ReadableStream<Uint8Array>,
  decoder: FrameDecoder<T>,
  options: ReadFramesOptions = {},
): AsyncGenerator<T> {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = readable.getReader({ mode: "byob" });
  } catch {
    byob = undefined;
  }
  if (byob) {
    let buffer = new ArrayBuffer(options.bufferSize ?? READ_BUFFER_BYTES);
    try {
      while (true) {
        const { value, done } = await byob.read(new Uint8Array(buffer));
        if (done || value === undefined) break;
        buffer = value.buffer as ArrayBuffer;
        yield* decoder.decode(value);
      }
    } finally {
      byob.releaseLock();
    }
  } else {
    const reader = readable.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        yield* decoder.decode(value);
      }
    } finally {
      reader.releaseLock();
    }
  }
  decoder.end();
}

/**
 * A growable byte buffer for decoders: append chunks, consume from the front.
 * Storage is compacted lazily so appending and consuming are amortised O(1).
 */
export class ByteQueue {
  #bytes: Uint8Array = new Uint8Array(0);
  #start = 0;
  #end = 0;
  /** How far from the front a line end was already searched for. */
  #scanned = 0;
  /** Total bytes consumed so far (the stream offset of the first held byte). */
  consumed = 0;

  /** Number of bytes held. */
  get length(): number {
    return this.#end - this.#start;
  }

  /** The held bytes, as a view (valid until the next append). */
  view(): Uint8Array {
    return this.#bytes.subarray(this.#start, this.#end);
  }

  /** Appends a copy of `chunk`. */
  append(chunk: Uint8Array): void {
    const need = this.#end + chunk.length;
    if (need > this.#bytes.length) {
      const held = this.#end - this.#start;
      if (held + chunk.length <= this.#bytes.length && this.#start > 0) {
        this.#bytes.copyWithin(0, this.#start, this.#end);
      } else {
        const grown = new Uint8Array(Math.max(held + chunk.length, this.#bytes.length * 2, 256));
        grown.set(this.#bytes.subarray(this.#start, this.#end));
        this.#bytes = grown;
      }
      this.#start = 0;
      this.#end = held;
    }
    this.#bytes.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /**
   * Index in {@link ByteQueue.view} of the first LF, or -1 while none has
   * arrived. Bytes already searched are not searched again, so feeding a long
   * line one byte at a time stays linear.
   *
   * @throws {FrameTooLargeError} once the line (LF not counted) is longer than
   * `maxLineBytes`, even before its LF arrives.
   */
  findLineEnd(maxLineBytes: number, what = "line"): number {
    const view = this.view();
    const nl = view.indexOf(0x0a, this.#scanned);
    if (nl === -1) {
      this.#scanned = view.length;
      if (view.length > maxLineBytes) {
        throw new FrameTooLargeError(`${what} exceeds limit of ${maxLineBytes} bytes`, {
          offset: this.consumed,
        });
      }
      return -1;
    }
    if (nl > maxLineBytes) {
      throw new FrameTooLargeError(
        `${what} of ${nl} bytes exceeds limit of ${maxLineBytes} bytes`,
        {
          offset: this.consumed,
        },
      );
    }
    return nl;
  }

  /** Drops `n` bytes from the front. */
  skip(n: number): void {
    this.#scanned = 0;
    this.#start += n;
    this.consumed += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /** Removes and returns a copy of the first `n` bytes. */
  take(n: number): Uint8Array {
    const out = this.#bytes.slice(this.#start, this.#start + n);
    this.skip(n);
    return out;
  }
}

/**
 * Throws a {@link FrameError} when a stream ends inside a frame.
 *
 * @example
 * ```ts
 * import { assertNoPartialFrame } from "./frames.ts";
 * assertNoPartialFrame(0, 0); // fine: nothing buffered
 * ```
 */
export function assertNoPartialFrame(buffered: number, offset: number): void {
  if (buffered > 0) {
    throw new FrameError(`stream ended inside a frame (${buffered} bytes buffered)`, { offset });
  }
}
