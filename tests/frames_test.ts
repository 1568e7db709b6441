import { deepStrictEqual, ok } from "node:assert/strict";
import { concatBytes } from "../net/bytes.ts";
import fc from "fast-check";
import { FrameError, FrameTooLargeError, isFrameError } from "../protocols/errors.ts";
import { ByteQueue, readFrames } from "../protocols/frames.ts";
import {
  encodeEurechat,
  EurechatDecoder,
  type EurechatMessage,
  payloadText,
} from "../protocols/eurechat.ts";

/** Real eurechat frames (variable length, text header plus payload) for readFrames(). */
function frames(...payloads: string[]): Uint8Array {
  return concatBytes(payloads.map((p) => encodeEurechat("MESSAGE", ["x"], p)));
}

const payloads = (messages: EurechatMessage[]) => messages.map(payloadText);

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
  const read = await Array.fromAsync(
    readFrames(byteStream([frames("ab", "cd"), frames("e")]), new EurechatDecoder()),
  );
  deepStrictEqual(payloads(read), ["ab", "cd", "e"]);
});

Deno.test("readFrames() reads a default stream and rejects a truncated frame", async () => {
  const whole = frames("hello");
  const stream = ReadableStream.from([whole.subarray(0, whole.length - 2)]);
  await Array.fromAsync(readFrames(stream, new EurechatDecoder())).then(
    () => ok(false, "expected a FrameError"),
    (error) => ok(error instanceof FrameError),
  );
});

Deno.test("readFrames() gives the same frames for any split of the input", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.string({ maxLength: 40 })),
      fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1 }),
      async (texts, sizes) => {
        const bytes = frames(...texts);
        const chunks: Uint8Array[] = [];
        for (let o = 0, i = 0; o < bytes.length; i++) {
          const n = sizes[i % sizes.length];
          chunks.push(bytes.subarray(o, o + n));
          o += n;
        }
        const read = await Array.fromAsync(readFrames(byteStream(chunks), new EurechatDecoder()));
        deepStrictEqual(payloads(read), texts);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("readFrames() surfaces FrameTooLargeError from the decoder", async () => {
  const huge = new TextEncoder().encode("MESSAGE 70000 x\nabc");
  await Array.fromAsync(readFrames(byteStream([huge]), new EurechatDecoder()))
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
});
