import { deepStrictEqual, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { fuzzDecoder } from "./_helpers.ts";
import { encodeEurechat, EurechatDecoder, type EurechatMessage } from "../protocols/eurechat.ts";
import { FrameError, FrameTooLargeError } from "../protocols/errors.ts";
import { concatBytes } from "../net/bytes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const view = (m: EurechatMessage) => ({
  type: m.type,
  args: m.args,
  payload: dec.decode(m.payload),
});
const decodeAll = (text: string | Uint8Array, d = new EurechatDecoder()) =>
  d.decode(typeof text === "string" ? enc.encode(text) : text).map(view);

Deno.test("encodeEurechat() writes the header and payload of SPEC.md 1.1", () => {
  deepStrictEqual(
    dec.decode(encodeEurechat("MESSAGE", ["sender"], "Hello world!")),
    "MESSAGE 12 sender\nHello world!",
  );
  deepStrictEqual(dec.decode(encodeEurechat("PING")), "PING 0\n");
  deepStrictEqual(
    dec.decode(encodeEurechat("BIND", ["127.0.0.1", "5555"])),
    "BIND 0 127.0.0.1 5555\n",
  );
  deepStrictEqual(dec.decode(encodeEurechat("ACK", [], "héllo")), "ACK 6\nhéllo"); // bytes, not characters
  throws(() => encodeEurechat("BAD TYPE"), TypeError);
  throws(() => encodeEurechat("USER", ["two words"]), TypeError);
  throws(() => encodeEurechat("USER", [""]), TypeError);
});

Deno.test("EurechatDecoder.decode() reads the fixtures, payloads with newlines included", () => {
  deepStrictEqual(decodeAll("MESSAGE 12 sender\nHello world!"), [
    { type: "MESSAGE", args: ["sender"], payload: "Hello world!" },
  ]);
  deepStrictEqual(decodeAll("USER 0 corrado\nPASS 0 mypass\nQUERY 0\n"), [
    { type: "USER", args: ["corrado"], payload: "" },
    { type: "PASS", args: ["mypass"], payload: "" },
    { type: "QUERY", args: [], payload: "" },
  ]);
  deepStrictEqual(decodeAll("RESULT 11\na,1,2\nb,3,4PONG 0\n"), [
    { type: "RESULT", args: [], payload: "a,1,2\nb,3,4" },
    { type: "PONG", args: [], payload: "" },
  ]);
});

Deno.test("EurechatDecoder.decode() joins a message fed one byte at a time", () => {
  const bytes = enc.encode("MESSAGE 5 bob\nhi\nyoPING 0\n");
  const d = new EurechatDecoder();
  const out: ReturnType<typeof view>[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...d.decode(bytes.subarray(i, i + 1)).map(view));
  d.end();
  deepStrictEqual(out, [
    { type: "MESSAGE", args: ["bob"], payload: "hi\nyo" },
    { type: "PING", args: [], payload: "" },
  ]);
});

for (
  const [input, reason] of [
    ["USER\n", /has no length/],
    ["USER \n", /has no length/],
    ["USER x\n", /'x' is not a decimal number/],
    ["USER -1\n", /not a decimal number/],
    ["US-ER 0\n", /invalid message type 'US-ER'/],
    [" USER 0\n", /does not start with a type/],
    ["USER  0\n", /has no length/],
    ["USER 0 \n", /stray space/],
    ["USER 0 a  b\n", /stray space/],
    ["USER 0 a\tb\n", /whitespace inside an argument/],
    ["USER 0 corrado\r\n", /whitespace inside an argument/],
    ["\n", /does not start with a type/],
  ] as const
) {
  Deno.test(`EurechatDecoder.decode() refuses the malformed header ${JSON.stringify(input)}`, () => {
    const error = (() => {
      try {
        new EurechatDecoder().decode(enc.encode(input));
      } catch (e) {
        return e;
      }
    })();
    ok(error instanceof FrameError, `expected FrameError, got ${error}`);
    ok(reason.test(error.message), error.message);
    deepStrictEqual(error.offset, 0);
  });
}

Deno.test("EurechatDecoder.decode() enforces the header and payload limits", () => {
  throws(() => new EurechatDecoder().decode(enc.encode("MESSAGE 70000 x\n")), (e: unknown) => {
    ok(e instanceof FrameTooLargeError);
    deepStrictEqual(
      e.message,
      "Cannot decode frame: declared length 70000 exceeds limit of 65536 bytes",
    );
    return true;
  });
  deepStrictEqual(decodeAll(`A 65536\n${"x".repeat(65536)}`).length, 1);
  // A header line that never ends is refused as soon as it passes the limit.
  const d = new EurechatDecoder();
  d.decode(enc.encode("USER 0 " + "a".repeat(1000)));
  throws(() => d.decode(enc.encode("a".repeat(100))), FrameTooLargeError);
  throws(
    () => new EurechatDecoder().decode(enc.encode(`USER 0 ${"a".repeat(1020)}\n`)),
    FrameTooLargeError,
  );
  deepStrictEqual(decodeAll(`USER 0 ${"a".repeat(1017)}\n`).length, 1); // exactly 1024 bytes
  throws(
    () => new EurechatDecoder({ maxPayloadBytes: 10 }).decode(enc.encode("A 11\n")),
    FrameTooLargeError,
  );
});

Deno.test("EurechatDecoder.end() refuses a truncated message", () => {
  const d = new EurechatDecoder();
  d.decode(enc.encode("MESSAGE 12 sender\nHello"));
  throws(() => d.end(), FrameError);
  const h = new EurechatDecoder();
  h.decode(enc.encode("PIN"));
  throws(() => h.end(), FrameError);
});

const messageArb = fc.record({
  type: fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/),
  args: fc.array(fc.stringMatching(/^[!-~]{1,10}$/), { maxLength: 4 }),
  payload: fc.uint8Array({ maxLength: 300 }),
});

Deno.test("EurechatDecoder round trip: any messages, any chunking, same messages", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }),
      (messages, sizes) => {
        const parts = messages.map((m) => encodeEurechat(m.type, m.args, m.payload));
        const bytes = concatBytes(parts);
        const d = new EurechatDecoder();
        const out: EurechatMessage[] = [];
        for (let o = 0, i = 0; o < bytes.length; i++) {
          out.push(...d.decode(bytes.subarray(o, o + sizes[i % sizes.length])));
          o += sizes[i % sizes.length];
        }
        d.end();
        deepStrictEqual(
          out.map((m) => ({ ...m, payload: [...m.payload] })),
          messages.map((m) => ({ ...m, payload: [...m.payload] })),
        );
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("EurechatDecoder fuzz: random and mutated bytes only ever raise frame errors", () => {
  const valid = encodeEurechat("MESSAGE", ["sender"], "Hello world!");
  fuzzDecoder(() => new EurechatDecoder(), valid, { maxLength: 2000, maxStep: 50 });
});
