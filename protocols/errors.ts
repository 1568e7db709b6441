/**
 * Typed errors raised by Parley's frame decoders and encoders.
 *
 * Decoders never throw plain `Error`: input whose message boundaries cannot be
 * found is a {@link FrameError} (a `SyntaxError`), a frame over its limit is a
 * {@link FrameTooLargeError} (a `RangeError`).
 *
 * @module
 */

/** Options shared by the frame errors. */
export interface FrameErrorOptions {
  /** Byte offset into the decoder's input stream where the problem was found. */
  offset?: number;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * Input that cannot be split into frames: a malformed header, an unknown type
 * byte, a partial frame at the end of input.
 *
 * @example
 * ```ts
 * import { FrameError } from "./errors.ts";
 * const error = new FrameError("bad header", { offset: 3 });
 * console.assert(error instanceof SyntaxError && error.offset === 3);
 * ```
 */
export class FrameError extends SyntaxError {
  /** Byte offset into the input stream, when known. */
  readonly offset?: number;

  /** Makes a frame error; the message reads `Cannot decode frame: <reason>`. */
  constructor(reason: string, options: FrameErrorOptions = {}) {
    super(`Cannot decode frame: ${reason}`, { cause: options.cause });
    this.name = "FrameError";
    this.offset = options.offset;
  }
}

/**
 * A frame (or a header line) larger than the decoder's limit.
 *
 * @example
 * ```ts
 * import { FrameTooLargeError } from "./errors.ts";
 * const error = new FrameTooLargeError("declared length 70000 exceeds limit of 65536 bytes");
 * console.assert(error instanceof RangeError);
 * ```
 */
export class FrameTooLargeError extends RangeError {
  /** Byte offset into the input stream, when known. */
  readonly offset?: number;

  /** Makes a limit error; the message reads `Cannot decode frame: <reason>`. */
  constructor(reason: string, options: FrameErrorOptions = {}) {
    super(`Cannot decode frame: ${reason}`, { cause: options.cause });
    this.name = "FrameTooLargeError";
    this.offset = options.offset;
  }
}

/**
 * True for the errors a decoder may throw on bad input.
 *
 * @example
 * ```ts
 * import { FrameError, isFrameError } from "./errors.ts";
 * console.assert(isFrameError(new FrameError("x")) && !isFrameError(new Error("x")));
 * ```
 */
export function isFrameError(error: unknown): error is FrameError | FrameTooLargeError {
  return error instanceof FrameError || error instanceof FrameTooLargeError;
}
