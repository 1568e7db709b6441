import { deepStrictEqual, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { fuzzDecoder } from "./_helpers.ts";
import {
  CrcDecoder,
  type CrcFrame,
  CrcFrameDecoder,
  CrcLazyChat,
  type CrcMessage,
  encodeCrc,
} from "../protocols/crc.ts";
import { FrameError, FrameTooLargeError } from "../protocols/errors.ts";
import { concatBytes } from "../net/bytes.ts";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");

// Each fixture: the message, and its bytes commented field by field.
// deno-fmt-ignore
const fixtures: [CrcMessage, number[]][] = [
  [
    { kind: "server_registration", source: 1, lastHop: 0, name: "S1", info: "hub" },
    [
      0x00,                   // type: server registration
      0x00, 0x00, 0x00, 0x01, // source 1
      0x00, 0x00, 0x00, 0x00, // last_hop 0 (brand-new neighbour)
      0x02,                   // name_len 2
      0x00, 0x03,             // info_len 3
      0x53, 0x31,             // "S1"
      0x68, 0x75, 0x62,       // "hub"
    ],
  ],
  [
    { kind: "client_registration", source: 0xdeadbeef, lastHop: 7, name: "al", info: "" },
    [
      0x80,                   // type: client registration
      0xde, 0xad, 0xbe, 0xef, // source 0xdeadbeef
      0x00, 0x00, 0x00, 0x07, // last_hop 7
      0x02,                   // name_len 2
      0x00, 0x00,             // info_len 0
      0x61, 0x6c,             // "al"
    ],
  ],
  [
    { kind: "status", source: 9, destination: 0, code: 2, content: "dup" },
    [
      0x01,                   // type: status
      0x00, 0x00, 0x00, 0x09, // source 9
      0x00, 0x00, 0x00, 0x00, // destination 0
      0x00, 0x02,             // status code 2 (two bytes)
      0x00, 0x00, 0x00, 0x03, // len 3
      0x64, 0x75, 0x70,       // "dup"
    ],
  ],
  [
    { kind: "chat", source: 2, destination: 3, content: "hi" },
    [
      0x81,                   // type: client chat
      0x00, 0x00, 0x00, 0x02, // source 2
      0x00, 0x00, 0x00, 0x03, // destination 3
      0x00, 0x00, 0x00, 0x02, // len 2
      0x68, 0x69,             // "hi"
    ],
  ],
  [
    { kind: "client_quit", source: 4, content: "" },
    [
      0x82,                   // type: client quit
      0x00, 0x00, 0x00, 0x04, // source 4
      0x00, 0x00, 0x00, 0x00, // len 0
    ],
  ],
  [
    { kind: "server_quit", source: 5, replacement: 0, content: "x" },
    [
      0x02,                   // type: server quit
      0x00, 0x00, 0x00, 0x05, // source 5
      0x00, 0x00, 0x00, 0x00, // replacement 0 (none)
      0x00, 0x00, 0x00, 0x01, // len 1
      0x78,                   // "x"
    ],
  ],
];

for (const [message, bytes] of fixtures) {
  Deno.test(`encodeCrc() and CrcDecoder agree byte for byte on ${message.kind}`, () => {
    deepStrictEqual(hex(encodeCrc(message)), hex(new Uint8Array(bytes)));
    deepStrictEqual(new CrcDecoder().decode(new Uint8Array(bytes)), [message]);
  });
}

Deno.test("CrcDecoder handles every fixture split one byte at a time and all packed in one read", () => {
  const all = new Uint8Array(fixtures.flatMap(([, b]) => b));
  const d = new CrcDecoder();
  const out: CrcMessage[] = [];
  for (let i = 0; i < all.length; i++) out.push(...d.decode(all.subarray(i, i + 1)));
  d.end();
  deepStrictEqual(out, fixtures.map(([m]) => m));
  deepStrictEqual(new CrcDecoder().decode(all), fixtures.map(([m]) => m));
});

Deno.test("encodeCrc() refuses values that do not fit their field", () => {
  throws(
    () => encodeCrc({ kind: "chat", source: 2 ** 32, destination: 1, content: "" }),
    RangeError,
  );
  throws(() => encodeCrc({ kind: "chat", source: -1, destination: 1, content: "" }), RangeError);
  throws(() => encodeCrc({ kind: "chat", source: 1.5, destination: 1, content: "" }), RangeError);
  throws(
    () =>
      encodeCrc({
        kind: "server_registration",
        source: 1,
        lastHop: 0,
        name: "n".repeat(256),
        info: "",
      }),
    RangeError,
  );
  throws(
    () =>
      encodeCrc({
        kind: "client_registration",
        source: 1,
        lastHop: 0,
        name: "n",
        info: "i".repeat(65536),
      }),
    RangeError,
  );
  throws(
    () => encodeCrc({ kind: "status", source: 1, destination: 0, code: 65536, content: "" }),
    RangeError,
  );
  deepStrictEqual(
    encodeCrc({
      kind: "server_registration",
      source: 2 ** 32 - 1,
      lastHop: 0,
      name: "n".repeat(255),
      info: "",
    }).length,
    12 + 255,
  );
});

Deno.test("CrcDecoder refuses unknown type bytes and impossible lengths", () => {
  for (let type = 0; type < 256; type++) {
    const known = [0x00, 0x01, 0x02, 0x80, 0x81, 0x82].includes(type);
    const bytes = new Uint8Array(20);
    bytes[0] = type;
    if (known) {
      // A well-formed empty frame of each known type decodes (zero lengths everywhere).
      const messages = new CrcDecoder().decode(bytes);
      ok(messages.length >= 1, `type 0x${type.toString(16)}`);
      // The encoder makes the same type byte for what the decoder read.
      deepStrictEqual(encodeCrc(messages[0])[0], type);
    } else {
      throws(
        () => new CrcDecoder().decode(bytes),
        (e: unknown) => e instanceof FrameError && /unknown message type/.test(e.message),
      );
    }
  }
  const huge = encodeCrc({ kind: "chat", source: 1, destination: 2, content: "" });
  new DataView(huge.buffer).setUint32(9, 70000);
  throws(
    () => new CrcDecoder().decode(huge),
    (e: unknown) =>
      e instanceof FrameTooLargeError &&
      e.message === "Cannot decode frame: declared length 70000 exceeds limit of 65536 bytes",
  );
  const truncated = new CrcDecoder();
  truncated.decode(
    encodeCrc({ kind: "chat", source: 1, destination: 2, content: "hello" }).subarray(0, 15),
  );
  throws(() => truncated.end(), FrameError);
});

const id = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const text = (max: number) =>
  fc.string({ maxLength: max }).filter((s) => new TextEncoder().encode(s).length <= max);
const messageArb: fc.Arbitrary<CrcMessage> = fc.oneof(
  fc.record({
    kind: fc.constantFrom("server_registration" as const, "client_registration" as const),
    source: id,
    lastHop: id,
    name: text(60),
    info: text(100),
  }),
  fc.record({
    kind: fc.constant("status" as const),
    source: id,
    destination: id,
    code: fc.integer({ min: 0, max: 65535 }),
    content: text(100),
  }),
  fc.record({
    kind: fc.constant("chat" as const),
    source: id,
    destination: id,
    content: text(100),
  }),
  fc.record({ kind: fc.constant("client_quit" as const), source: id, content: text(100) }),
  fc.record({
    kind: fc.constant("server_quit" as const),
    source: id,
    replacement: id,
    content: text(100),
  }),
);

/** `parts` joined and fed to `decoder` in chunks of `sizes` (in turn), then ended: every frame. */
function decodeInChunks(
  decoder: CrcFrameDecoder,
  parts: readonly Uint8Array[],
  sizes: readonly number[],
): CrcFrame[] {
  const all = concatBytes(parts);
  const frames: CrcFrame[] = [];
  for (let o = 0, i = 0; o < all.length; i++) {
    frames.push(...decoder.decode(all.subarray(o, o + sizes[i % sizes.length])));
    o += sizes[i % sizes.length];
  }
  decoder.end();
  return frames;
}

Deno.test("CrcFrameDecoder round trip: any messages, any chunking, same messages and the same bytes", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1 }),
      (messages, sizes) => {
        const parts = messages.map(encodeCrc);
        const frames = decodeInChunks(new CrcFrameDecoder(), parts, sizes);
        deepStrictEqual(frames.map((f) => f.message), messages.map((m) => ({ ...m })));
        deepStrictEqual(frames.map((f) => hex(f.bytes)), parts.map(hex));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("CrcFrameDecoder with lazyChatContent: the same frames and fields, a chat's content decoded when read", () => {
  fc.assert(
    fc.property(
      fc.array(messageArb, { maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1 }),
      (messages, sizes) => {
        const parts = messages.map(encodeCrc);
        const frames = decodeInChunks(new CrcFrameDecoder({ lazyChatContent: true }), parts, sizes);
        deepStrictEqual(frames.map((f) => hex(f.bytes)), parts.map(hex));
        frames.forEach(({ message }, i) => {
          const expected = messages[i];
          if (expected.kind !== "chat") return deepStrictEqual(message, { ...expected });
          ok(message instanceof CrcLazyChat);
          deepStrictEqual(
            [message.kind, message.source, message.destination, message.content],
            [expected.kind, expected.source, expected.destination, expected.content],
          );
        });
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("CrcDecoder fuzz: random and mutated bytes only ever raise frame errors", () => {
  const valid = new Uint8Array(fixtures.flatMap(([, b]) => b));
  fuzzDecoder(() => new CrcDecoder(), valid, { maxLength: 500, maxStep: 30 });
});

Deno.test("CrcDecoder: a name or info that is not UTF-8 or holds a control character is a framing error; chat content may hold anything", () => {
  const registration = (name: Uint8Array, info: Uint8Array) => {
    const head = encodeCrc({
      kind: "client_registration",
      source: 7,
      lastHop: 0,
      name: "",
      info: "",
    });
    const out = new Uint8Array(12 + name.length + info.length);
    out.set(head);
    out[9] = name.length;
    new DataView(out.buffer).setUint16(10, info.length);
    out.set(name, 12);
    out.set(info, 12 + name.length);
    return out;
  };
  const utf8 = (s: string) => new TextEncoder().encode(s);
  for (
    const [name, info, reason] of [
      [new Uint8Array(255).fill(0xff), utf8(""), /name is not valid UTF-8/],
      [utf8("ok"), new Uint8Array([0xc3]), /info is not valid UTF-8/],
      [utf8("a\u0000b"), utf8(""), /name contains a control character/],
      [utf8("ok"), utf8("\u001b[2J"), /info contains a control character/],
      [utf8("\u202eevil"), utf8(""), /name contains a control character/],
      [utf8("c1\u0085"), utf8(""), /name contains a control character/],
    ] as const
  ) {
    throws(
      () => new CrcDecoder().decode(registration(name, info)),
      (e: unknown) => e instanceof FrameError && reason.test(e.message),
    );
  }
  // A BOM is kept, so the name re-encodes to the bytes that came in.
  const [bom] = new CrcDecoder().decode(registration(utf8("\ufeffé"), utf8("")));
  ok(bom.kind === "client_registration" && bom.name === "\ufeffé");
  deepStrictEqual(encodeCrc(bom).length, 12 + 5);
  const chat = encodeCrc({ kind: "chat", source: 1, destination: 2, content: "xx" });
  chat.set([0xff, 0x00], 13);
  deepStrictEqual(new CrcDecoder().decode(chat)[0], {
    kind: "chat",
    source: 1,
    destination: 2,
    content: "\ufffd\u0000",
  });
});
