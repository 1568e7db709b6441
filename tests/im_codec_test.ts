import { deepStrictEqual, ok, throws } from "node:assert/strict";
import fc from "fast-check";
import { fuzzBytes } from "./_helpers.ts";
import {
  encodeIm,
  ImLineDecoder,
  type ImMessage,
  ImMessageError,
  parseImLine,
} from "../protocols/im.ts";
import { FrameError, FrameTooLargeError, isFrameError } from "../protocols/errors.ts";

const enc = new TextEncoder();
const text = (m: ImMessage) => new TextDecoder().decode(encodeIm(m));

const fixtures: [string, ImMessage][] = [
  ['REGISTER ["alice","online"]', { command: "REGISTER", username: "alice", status: "online" }],
  ['STATUS ["away"]', { command: "STATUS", status: "away" }],
  ["GOODBYE", { command: "GOODBYE" }],
  ['INVITE ["bob","carol"]', { command: "INVITE", users: ["bob", "carol"] }],
  ["LIST_CONVERSATIONS", { command: "LIST_CONVERSATIONS" }],
  ["JOIN [3]", { command: "JOIN", conversation: 3 }],
  ['SEND_MESSAGE [3,"hi\\nthere"]', {
    command: "SEND_MESSAGE",
    conversation: 3,
    message: "hi\nthere",
  }],
  ["LEAVE [3]", { command: "LEAVE", conversation: 3 }],
  ['ONLINE_USERS {"alice":"online","bob":"away"}', {
    command: "ONLINE_USERS",
    users: { alice: "online", bob: "away" },
  }],
  ['INVITATION [3,"alice"]', { command: "INVITATION", conversation: 3, inviter: "alice" }],
  ['CONVERSATIONS {"3":["alice","bob"]}', {
    command: "CONVERSATIONS",
    conversations: { "3": ["alice", "bob"] },
  }],
  ['MESSAGE [3,"bob","hi"]', { command: "MESSAGE", conversation: 3, sender: "bob", message: "hi" }],
  ['ERROR "no conversation 9"', { command: "ERROR", text: "no conversation 9" }],
];

for (const [line, message] of fixtures) {
  Deno.test(`encodeIm() and parseImLine() agree on ${line.split(" ")[0]}`, () => {
    deepStrictEqual(text(message), `${line}\n`);
    deepStrictEqual(parseImLine(line), message);
  });
}

Deno.test("parseImLine() accepts string ids and spacing inside JSON", () => {
  deepStrictEqual(parseImLine('JOIN ["7"]'), { command: "JOIN", conversation: "7" });
  deepStrictEqual(parseImLine('SEND_MESSAGE [ 7 , "x" ]'), {
    command: "SEND_MESSAGE",
    conversation: 7,
    message: "x",
  });
});

for (
  const [line, expected] of [
    ["FOO", /^unknown command FOO$/],
    ['register ["a","b"]', /^invalid command 'register'$/],
    ["", /^empty command$/],
    ["REGISTER {bad json", /^invalid JSON after REGISTER: /],
    ['REGISTER ["alice"]', /^REGISTER expects \[username, status\]/],
    ['REGISTER ["two words","x"]', /^username must be 1 to 32 bytes/],
    ['REGISTER ["a\\u202eb","x"]', /^username must be 1 to 32 bytes/],
    ['REGISTER ["alice","\\u0007"]', /^status must be at most 64 bytes/],
    ['STATUS ["' + "s".repeat(65) + '"]', /^status must be at most 64 bytes/],
    ['REGISTER "alice"', /^REGISTER expects/],
    ["INVITE []", /^INVITE expects \[user, user, \.\.\.\]/],
    ["INVITE [1]", /^INVITE expects/],
    ['JOIN ["x"]', /^JOIN expects \[convId\]/],
    ["JOIN [-1]", /^JOIN expects/],
    ["GOODBYE []", /^GOODBYE expects no arguments$/],
    ["SEND_MESSAGE [1]", /^SEND_MESSAGE expects \[convId, message\]$/],
    ["ERROR 5", /^ERROR expects/],
  ] as const
) {
  Deno.test(`parseImLine() explains what is wrong with ${JSON.stringify(line)}`, () => {
    throws(() => parseImLine(line), (e: unknown) => {
      ok(e instanceof ImMessageError && !isFrameError(e));
      ok(expected.test(e.message), e.message);
      return true;
    });
  });
}

Deno.test("ImLineDecoder.decode() gives the same lines for every chunking", () => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ maxLength: 50 }).filter((s) => !s.includes("\n")), { maxLength: 10 }),
      fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1 }),
      (lines, sizes) => {
        const bytes = enc.encode(lines.map((l) => `${l}\n`).join(""));
        const d = new ImLineDecoder();
        const out: string[] = [];
        for (let o = 0, i = 0; o < bytes.length; i++) {
          out.push(...d.decode(bytes.subarray(o, o + sizes[i % sizes.length])));
          o += sizes[i % sizes.length];
        }
        d.end();
        deepStrictEqual(out, lines);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("ImLineDecoder round trip: encoded messages with any text survive 1-byte reads", () => {
  fc.assert(
    fc.property(fc.string(), fc.string(), (status, message) => {
      const bytes = new Uint8Array([
        ...encodeIm({ command: "STATUS", status }),
        ...encodeIm({ command: "SEND_MESSAGE", conversation: 1, message }),
      ]);
      const d = new ImLineDecoder();
      const lines: string[] = [];
      for (let i = 0; i < bytes.length; i++) lines.push(...d.decode(bytes.subarray(i, i + 1)));
      deepStrictEqual(lines.map(parseImLine), [
        { command: "STATUS", status },
        { command: "SEND_MESSAGE", conversation: 1, message },
      ]);
    }),
    { numRuns: 200 },
  );
});

Deno.test("ImLineDecoder refuses a line over 64 KiB, even before its LF arrives", () => {
  const d = new ImLineDecoder();
  d.decode(enc.encode("SEND_MESSAGE " + "x".repeat(65000)));
  throws(() => d.decode(enc.encode("x".repeat(1000))), FrameTooLargeError);
  deepStrictEqual(new ImLineDecoder().decode(enc.encode(`${"x".repeat(65536)}\n`)).length, 1);
  throws(
    () => new ImLineDecoder().decode(enc.encode(`${"x".repeat(65537)}\n`)),
    FrameTooLargeError,
  );
  const partial = new ImLineDecoder();
  partial.decode(enc.encode("GOOD"));
  throws(() => partial.end(), FrameError);
});

Deno.test("IM fuzz: random and mutated bytes give frame errors or message errors, nothing else", () => {
  const valid = encodeIm({ command: "SEND_MESSAGE", conversation: 12, message: "hello" });
  fc.assert(
    fc.property(
      fuzzBytes(valid, 3000),
      (bytes) => {
        const d = new ImLineDecoder({ maxLineBytes: 1000 });
        try {
          for (const line of d.decode(bytes)) {
            try {
              parseImLine(line);
            } catch (e) {
              ok(e instanceof ImMessageError, `unexpected ${e}`);
            }
          }
        } catch (e) {
          ok(isFrameError(e), `unexpected ${e}`);
        }
      },
    ),
    { numRuns: 1000 },
  );
});
