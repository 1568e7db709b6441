/**
 * CRC hot paths, one `deno bench` case per optimisation (issue 14), so a later
 * change cannot silently undo one:
 *
 * - decoding: one copy per read for all the frames it completes, and short
 *   printable ASCII names without the (slow, fatal) TextDecoder (group "crc
 *   decode"); the node's decoder leaves a chat's content undecoded until read
 *   (`lazyChatContent`: one class with a prototype getter; an earlier getter
 *   in an object literal, a closure per chat, measured slower in the node);
 * - absorbing registrations over a server link: the forwarded frame is the
 *   received bytes with last_hop patched (no re-encode),
 *   O(1) per registration however many are known: the two cases of group
 *   "crc absorb" must stay close (group "crc absorb");
 * - routing chats one read at a time (group "crc route").
 *
 * Run: `deno bench bench/crc_bench.ts` (or `deno task bench`).
 *
 * @module
 */

import { CrcDecoder, CrcFrameDecoder, encodeCrc } from "../protocols/crc.ts";
import { CrcRouter } from "../protocols/crc_router.ts";
import { concatBytes } from "../net/bytes.ts";

const registrations = (from: number, count: number) =>
  concatBytes(Array.from({ length: count }, (_, i) =>
    encodeCrc({
      kind: "client_registration",
      source: from + i,
      lastHop: 66,
      name: `user${i}`,
      info: "",
    })));
const chats = concatBytes(
  Array.from(
    { length: 1000 },
    (_, i) =>
      encodeCrc({ kind: "chat", source: 100, destination: 101, content: `T${i}`.padEnd(64, ".") }),
  ),
);
const utf8Chats = concatBytes(
  Array.from(
    { length: 1000 },
    (_, i) =>
      encodeCrc({ kind: "chat", source: 100, destination: 101, content: `é${i}`.padEnd(64, "ü") }),
  ),
);
const thousand = registrations(10_000, 1000);

/** Feeds `input` in 64 KiB reads, as the node reads. */
function decodeAll(input: Uint8Array, lazyChatContent = false): number {
  const d = new CrcFrameDecoder({ lazyChatContent });
  let n = 0;
  for (let o = 0; o < input.length; o += 64 * 1024) {
    n += d.decode(input.subarray(o, o + 65536)).length;
  }
  return n;
}

Deno.bench({
  name: "1000 registrations, 64 KiB reads",
  group: "crc decode",
  baseline: true,
  fn() {
    if (decodeAll(thousand) !== 1000) throw new Error("lost frames");
  },
});
Deno.bench({
  name: "1000 ASCII chats of 64 B, 64 KiB reads",
  group: "crc decode",
  fn() {
    if (decodeAll(chats) !== 1000) throw new Error("lost frames");
  },
});
Deno.bench({
  name: "1000 ASCII chats of 64 B, content decoded on first use (the node's decoder)",
  group: "crc decode",
  fn() {
    if (decodeAll(chats, true) !== 1000) throw new Error("lost frames");
  },
});
Deno.bench({
  name: "1000 non-ASCII chats of 64 B, 64 KiB reads",
  group: "crc decode",
  fn() {
    let n = 0;
    const d = new CrcDecoder();
    for (let o = 0; o < utf8Chats.length; o += 64 * 1024) {
      for (const m of d.decode(utf8Chats.subarray(o, o + 65536))) {
        if (m.kind === "chat") n += m.content.length;
      }
    }
    if (n === 0) throw new Error("lost frames");
  },
});

/** A router with one server link (1) and two clients (2, 3), wired to nothing. */
function router(): CrcRouter {
  const r = new CrcRouter({ id: 1, name: "bench" }, { send() {}, close() {} });
  const feed = (link: number, bytes: Uint8Array) => {
    for (const f of new CrcFrameDecoder().decode(bytes)) r.receive(link, f);
  };
  r.open(1);
  feed(1, encodeCrc({ kind: "server_registration", source: 66, lastHop: 0, name: "s", info: "" }));
  r.open(2);
  feed(2, encodeCrc({ kind: "client_registration", source: 100, lastHop: 0, name: "a", info: "" }));
  r.open(3);
  feed(3, encodeCrc({ kind: "client_registration", source: 101, lastHop: 0, name: "b", info: "" }));
  return r;
}

for (const known of [0, 50_000]) {
  const r = router();
  if (known) {
    for (const f of new CrcFrameDecoder().decode(registrations(1_000_000, known))) r.receive(1, f);
  }
  const arrive = new CrcFrameDecoder().decode(registrations(2_000_000, 1000));
  const leave = new CrcFrameDecoder().decode(
    concatBytes(
      Array.from(
        { length: 1000 },
        (_, i) => encodeCrc({ kind: "client_quit", source: 2_000_000 + i, content: "" }),
      ),
    ),
  );
  Deno.bench({
    name: `1000 registrations then their quits, ${known} hosts known`,
    group: "crc absorb",
    baseline: known === 0,
    fn() {
      for (const f of arrive) r.receive(1, f);
      for (const f of leave) r.receive(1, f);
      if (r.hostCount !== known + 3) throw new Error("not absorbed");
    },
  });
}

{
  const r = router();
  const frames = new CrcFrameDecoder({ lazyChatContent: true }).decode(chats);
  Deno.bench({
    name: "route 1000 chats client to client",
    group: "crc route",
    fn() {
      for (const f of frames) r.receive(2, f);
    },
  });
}
