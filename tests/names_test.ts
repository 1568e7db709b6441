import { deepStrictEqual } from "node:assert/strict";
import fc from "fast-check";
import { isSafeName, isSafeNameBytes, utf8Length } from "../protocols/names.ts";

const encoder = new TextEncoder();

Deno.test("isSafeName() accepts ordinary names in any script", () => {
  for (const name of ["alice", "168 tas", "Zoë", "東京", "😀 smile", "a-b_c.d", ""]) {
    deepStrictEqual(isSafeName(name), true, name);
  }
});

Deno.test("isSafeName() refuses every C0, DEL, C1 and bidi control, and U+FFFD", () => {
  const bad = [
    ...Array.from({ length: 0x20 }, (_, i) => i),
    0x7f,
    ...Array.from({ length: 0x20 }, (_, i) => 0x80 + i),
    0x202a,
    0x202b,
    0x202c,
    0x202d,
    0x202e,
    0x2066,
    0x2067,
    0x2068,
    0x2069,
    0xfffd,
  ];
  for (const code of bad) {
    deepStrictEqual(isSafeName(`a${String.fromCodePoint(code)}b`), false, code.toString(16));
    deepStrictEqual(isSafeNameBytes(encoder.encode(String.fromCodePoint(code))), false);
  }
  // Neighbours of the refused ranges are fine.
  for (const code of [0x20, 0x7e, 0xa0, 0x2029, 0x202f, 0x2065, 0x206a]) {
    deepStrictEqual(isSafeName(String.fromCodePoint(code)), true, code.toString(16));
  }
});

Deno.test("isSafeName() refuses lone surrogates and counts the byte limit in UTF-8", () => {
  deepStrictEqual(isSafeName("a\ud800"), false);
  deepStrictEqual(isSafeName("\udc00b"), false);
  deepStrictEqual(isSafeName("é".repeat(16), { maxBytes: 32 }), true);
  deepStrictEqual(isSafeName("é".repeat(16) + "x", { maxBytes: 32 }), false);
  deepStrictEqual(isSafeName("😀".repeat(8), { maxBytes: 32 }), true);
  deepStrictEqual(isSafeName("😀".repeat(8) + "x", { maxBytes: 32 }), false);
});

Deno.test("isSafeNameBytes() refuses bytes that are not UTF-8", () => {
  for (
    const bytes of [[0xff], [0x61, 0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [
      0xf8,
      0x88,
      0x80,
      0x80,
    ]]
  ) {
    deepStrictEqual(isSafeNameBytes(new Uint8Array(bytes)), false, String(bytes));
  }
  deepStrictEqual(isSafeNameBytes(encoder.encode("Zoë")), true);
  deepStrictEqual(isSafeNameBytes(encoder.encode("abc"), { maxBytes: 2 }), false);
});

Deno.test("utf8Length() agrees with TextEncoder for any string", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 50 }), (s) => {
      deepStrictEqual(utf8Length(s), encoder.encode(s).length);
    }),
    { numRuns: 500 },
  );
  deepStrictEqual(utf8Length("a\ud800"), 4); // a lone surrogate becomes U+FFFD: 3 bytes
});
