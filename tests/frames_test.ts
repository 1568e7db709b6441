import { deepStrictEqual, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { FrameError, FrameTooLargeError, isFrameError } from "../protocols/errors.ts";
import { ByteQueue, type FrameDecoder, readFrames } from "../protocols/frames.ts";

/** A tiny length-prefixed test format: u8 length, then that many bytes (limit 100). */
class TinyDecoder implements FrameDecoder<string> {
  #queue = new ByteQueue();
  decode(chunk: Uint8Array): string[] {
    this.#queue.append(chunk);
    const out: string[] = [];
    while (this.#queue.length >= 1) {
      const len = this.#queue.view()[0];
      if (len > 100) {
        throw new FrameTooLargeError(`declared length ${len} exceeds limit of 100 bytes`, {
          offset: this.#queue.consumed,
        });
      }
      if (this.#queue.length < 1 + len) break;
      this.#queue.skip(1);
      out.push(new TextDecoder().decode(this.#queue.take(len)));
    }
    return out;
  }
  end(): void {
    if (this.#queue.length > 0) {
      throw new FrameError("partial frame", { offset: this.#queue.consumed });
    }
  }
}

function tiny(...texts: string[]): Uint8Array {
  const parts = texts.map((t) => new TextEncoder().encode(t));
  const out = new Uint8Array(parts.reduce((n, p) => n + 1 + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out[o++] = p.length;
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function byteStream(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    type: "bytes",
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++].slice());
      else {
        controller.close();
        controller.byobRequest?.respond(0); // a pending BYOB read must be answered on close
      }
    },
  });
}

Deno.test("FrameError is a SyntaxError with an offset and a cause", () => {
  const cause = new Error("inner");
  const error = new FrameError("bad header", { offset: 7, cause });
  ok(error instanceof SyntaxError);
  deepStrictEqual([error.name, error.offset, error.cause], ["FrameError", 7, cause]);
  deepStrictEqual(error.message, "Cannot decode frame: bad header");
  ok(new FrameTooLargeError("x") instanceof RangeError);
  ok(isFrameError(new FrameTooLargeError("x")) && !isFrameError(new TypeError("x")));
});

Deno.test("readFrames() reads a byte stream with a BYOB reader and ends the decoder", async () => {
  const frames = await Array.fromAsync(
    readFrames(byteStream([tiny("ab", "cd"), tiny("e")]), new TinyDecoder()),
  );
  deepStrictEqual(frames, ["ab", "cd", "e"]);
});

Deno.test("readFrames() reads a default stream and rejects a truncated frame", async () => {
  const whole = tiny("hello");
  const stream = ReadableStream.from([whole.subarray(0, 3)]);
  await Array.fromAsync(readFrames(stream, new TinyDecoder())).then(
    () => ok(false, "expected a FrameError"),
    (error) => ok(error instanceof FrameError),
  );
});

Deno.test("readFrames() gives the same frames for any split of the input", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.string({ maxLength: 40 }).filter((s) => new TextEncoder().encode(s).length <= 100),
      ),
      fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1 }),
      async (texts, sizes) => {
        const bytes = tiny(...texts);
        const chunks: Uint8Array[] = [];
        for (let o = 0, i = 0; o < bytes.length; i++) {
          const n = sizes[i % sizes.length];
          chunks.push(bytes.subarray(o, o + n));
          o += n;
        }
        const frames = await Array.fromAsync(readFrames(byteStream(chunks), new TinyDecoder()));
        deepStrictEqual(frames, texts);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("readFrames() surfaces FrameTooLargeError from the decoder", async () => {
  await Array.fromAsync(readFrames(byteStream([new Uint8Array([200, 1, 2])]), new TinyDecoder()))
    .then(
      () => ok(false, "expected FrameTooLargeError"),
      (error) => {
        ok(error instanceof FrameTooLargeError);
        deepStrictEqual(error.offset, 0);
      },
    );
});

Deno.test("ByteQueue.append() and take() keep byte order across growth and compaction", () => {
  const q = new ByteQueue();
  const expected: number[] = [];
  let next = 0;
  for (let round = 0; round < 200; round++) {
    const chunk = Uint8Array.from({ length: (round * 7) % 50 }, () => next++ & 0xff);
    q.append(chunk);
    expected.push(...chunk);
    const n = Math.min(q.length, (round * 5) % 40);
    deepStrictEqual([...q.take(n)], expected.splice(0, n));
  }
  deepStrictEqual([...q.view()], expected);
  throws(() => new TinyDecoder().decode(new Uint8Array([255])), RangeError);
});
