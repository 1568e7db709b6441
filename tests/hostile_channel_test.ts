/**
 * The channel server against strangers (SPEC.md 6.3, 6.4): names that would
 * reach other people with control characters are refused, a channel
 * disappears with its last member so a `/create` flood holds one channel, and
 * a `/list` never gets its asker dropped. Every attack is bounded in count and
 * time, and a normal client is served during and after it.
 */
import { concatBytes } from "../net/bytes.ts";
import { deepStrictEqual, ok } from "node:assert/strict";
import {
  CHANNEL_FRAME_BYTES,
  CHANNEL_SERVER_TEXTS,
  CHANNEL_TEXTS,
  ChannelDecoder,
  encodeChannelFrame,
} from "../protocols/channel.ts";
import { serveChannel } from "../servers/channel.ts";
import { Peer, portOf, waitUntil, within } from "./_helpers.ts";

const frame = encodeChannelFrame;

/** A 200-byte frame of raw bytes (for names that are not UTF-8). */
function rawFrame(bytes: number[]): Uint8Array {
  const f = new Uint8Array(CHANNEL_FRAME_BYTES).fill(0x20);
  f.set(bytes);
  return f;
}

async function client(server: { addr: Deno.Addr }, name: string): Promise<Peer<string>> {
  const peer = await Peer.connect(server.addr, new ChannelDecoder());
  await peer.write(frame(name));
  return peer;
}

/** Sends `/list` and returns its reply (one frame: the tests keep the lists short). */
async function list(peer: Peer<string>): Promise<string> {
  await peer.write(frame("/list"));
  return await peer.next();
}

/** A chat from the victim that its friend must receive next. */
async function ping(victim: Peer<string>, friend: Peer<string>, text: string): Promise<void> {
  await victim.write(frame(text));
  deepStrictEqual(await friend.next(5000), `[Victim] ${text}`);
}

const squatter = (i: number) => String(i).padStart(64, "x");

const BAD_NAMES = [
  "evil\u202egnp.exe", // right-to-left override
  "bell\x07",
  "clear\x1b[2J",
  "del\x7f",
  "next\u0085line", // C1
  "iso\u2066late",
  "tab\tname",
  "new\nline",
];

Deno.test("serveChannel() refuses names with control characters or bytes that are not UTF-8, and keeps the connection", async () => {
  await using server = serveChannel({ port: 0 });
  await using bystander = await client(server, "Bystander");
  await bystander.write(frame("/create lobby"));
  deepStrictEqual(await list(bystander), "lobby");

  await using stranger = await Peer.connect(server.addr, new ChannelDecoder());
  for (const bad of BAD_NAMES) {
    await stranger.write(frame(bad));
    deepStrictEqual(await stranger.next(), CHANNEL_SERVER_TEXTS.badName, JSON.stringify(bad));
  }
  await stranger.write(rawFrame([0x41, 0xff, 0xfe, 0x42])); // not UTF-8
  deepStrictEqual(await stranger.next(), CHANNEL_SERVER_TEXTS.badName);
  await stranger.write(rawFrame([0xc3])); // a truncated sequence
  deepStrictEqual(await stranger.next(), CHANNEL_SERVER_TEXTS.badName);
  // Still connected and still unnamed: the next frame is its name.
  await stranger.write(frame("Zoë"));
  await stranger.write(frame("/join lobby"));
  deepStrictEqual(await bystander.next(), "Zoë has joined");

  // Channel names: refused with one reply, nothing changes (Zoë stays in the lobby).
  for (const bad of [...BAD_NAMES, "title\x1b]0;pwned\x07"]) {
    await stranger.write(frame(`/create ${bad}`));
    deepStrictEqual(await stranger.next(), CHANNEL_SERVER_TEXTS.badChannelName, bad);
    await stranger.write(frame(`/join ${bad}`));
    deepStrictEqual(await stranger.next(), CHANNEL_SERVER_TEXTS.badChannelName, bad);
  }
  await stranger.write(concatBytes([frame("/create "), rawFrame([0x2f, 0x63, 0x72])]));
  await stranger.write(concatBytes([rawFrame([...new TextEncoder().encode("/create x"), 0xff])]));
  deepStrictEqual(await stranger.next(), CHANNEL_TEXTS.createRequiresName);
  deepStrictEqual(await stranger.next(), CHANNEL_TEXTS.invalidControlMessage("/cr"));
  deepStrictEqual(await stranger.next(), CHANNEL_SERVER_TEXTS.badChannelName);
  deepStrictEqual(await list(stranger), "lobby");

  // Chat text may hold anything (clients neutralise it): delivered as sent.
  await stranger.write(frame("red \x1b[31m text \u202e"));
  deepStrictEqual(await bystander.next(), "[Zoë] red \x1b[31m text \u202e");
  deepStrictEqual(await list(bystander), "lobby");
});

Deno.test("serveChannel() under a /create flood: channels die with their last member, the state stays one channel, a victim is served throughout", async () => {
  await using server = serveChannel({ port: 0 });
  await using victim = await client(server, "Victim");
  await using friend = await client(server, "Friend");
  await victim.write(frame("/create home"));
  deepStrictEqual(await list(victim), "home");
  await friend.write(frame("/join home"));
  deepStrictEqual(await victim.next(), "Friend has joined");

  const attacker = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
  attacker.setNoDelay(true);
  const ATTEMPTS = 20_000;
  const BATCH = 500;
  const flood = (async () => {
    await attacker.write(frame("Spammer"));
    for (let sent = 0; sent < ATTEMPTS; sent += BATCH) {
      const batch = Array.from({ length: BATCH }, (_, i) => frame(`/create spam-${sent + i}`));
      for (let o = 0, all = concatBytes(batch); o < all.length;) {
        o += await attacker.write(all.subarray(o));
      }
    }
  })();
  // The victim's chats reach its friend in order while the flood runs.
  let pings = 0;
  let done = false;
  flood.finally(() => done = true);
  while (!done || pings < 5) {
    await ping(victim, friend, `ping ${pings++}`);
    if (pings > 10_000) break;
  }
  await within(flood, 30_000, "the flood to be written");
  // The reply to a failed /join after the flood proves every /create before it was handled.
  await attacker.write(frame("/join nowhere"));
  const reply = new Uint8Array(CHANNEL_FRAME_BYTES);
  for (let got = 0; got < reply.length;) {
    const n = await within(attacker.read(reply.subarray(got)), 10_000, "the attacker's reply");
    ok(n !== null, "the attacker was closed");
    got += n;
  }
  // The attacker's last /create is the only channel it holds; every earlier one died with it.
  const expected = `home\nspam-${ATTEMPTS - 1}`;
  await victim.write(frame("/list"));
  deepStrictEqual(await victim.next(10_000), expected);
  attacker.close();
  await ping(victim, friend, "after");
  // The attacker's channel went with the attacker.
  await waitUntil(async () => await list(friend) === "home", 5000, "the spammer's channel to go");
  ok(pings >= 5);
});

Deno.test("serveChannel() caps a /list that would not fit the send queue, says so, and keeps the asker", async () => {
  const maxQueueBytes = 8192;
  await using server = serveChannel({ port: 0, maxQueueBytes });
  await using victim = await client(server, "Victim");
  await using friend = await client(server, "Friend");
  await victim.write(frame("/create home"));
  deepStrictEqual(await list(victim), "home");
  await friend.write(frame("/join home"));
  deepStrictEqual(await victim.next(), "Friend has joined");
  // 200 strangers each hold a channel with a 64-byte name: a full list is about 13 KB.
  const squatters: Deno.Conn[] = [];
  try {
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
      squatters.push(conn);
      await conn.write(
        concatBytes([frame(`S${i}`), frame(`/create ${squatter(i)}`), frame("/join nowhere")]),
      );
      // The reply to the failed /join proves the /create before it was done.
      const reply = new Uint8Array(CHANNEL_FRAME_BYTES);
      for (let got = 0; got < reply.length;) {
        const n = await conn.read(reply.subarray(got));
        if (n === null) throw new Error(`squatter ${i} was closed`);
        got += n;
      }
    }));
    await victim.write(concatBytes([frame("/list"), frame("/join nowhere")]));
    const reply: string[] = [];
    while (true) {
      const f = await victim.next();
      if (f.startsWith("No channel named nowhere")) break;
      reply.push(f);
    }
    ok(reply.length * CHANNEL_FRAME_BYTES <= maxQueueBytes / 4, `${reply.length} frames`);
    const note = reply.pop()!;
    const names = reply.join("\n").split("\n");
    deepStrictEqual(names[0], "home");
    const all = new Set(Array.from({ length: 200 }, (_, i) => squatter(i)));
    ok(names.slice(1).every((name) => all.delete(name)), "only squatters' channels, each once");
    deepStrictEqual(note, CHANNEL_SERVER_TEXTS.listCapped(201 - names.length));
    // Not dropped: chats still flow both ways.
    await ping(victim, friend, "still here");
  } finally {
    for (const conn of squatters) conn.close();
  }
});

Deno.test("serveChannel() --register-timeout closes a connection that gives no name; --frame-timeout closes a slowloris; named idle clients stay", async () => {
  await using server = serveChannel({ port: 0, registerTimeoutMs: 300, frameTimeoutMs: 300 });
  await using named = await client(server, "Named");
  await named.write(frame("/create home"));
  deepStrictEqual(await list(named), "home");
  // Says nothing at all; keeps giving unusable names: closed with one line either way.
  await using silent = await Peer.connect(server.addr, new ChannelDecoder());
  await using refused = await Peer.connect(server.addr, new ChannelDecoder());
  await refused.write(frame("bad\x07"));
  deepStrictEqual(await refused.next(), CHANNEL_SERVER_TEXTS.badName);
  deepStrictEqual(await silent.next(2000), CHANNEL_SERVER_TEXTS.nameTimeout(0.3));
  await silent.closedByServer(2000);
  deepStrictEqual(await refused.next(2000), CHANNEL_SERVER_TEXTS.nameTimeout(0.3));
  await refused.closedByServer(2000);
  // A named client that sends a frame one byte at a time is closed before the frame completes.
  await using slow = await client(server, "Slow");
  await slow.write(frame("/join home"));
  deepStrictEqual(await named.next(), "Slow has joined");
  const partial = frame("never finished");
  let sent = 0;
  while (!slow.ended && sent < partial.length) {
    await slow.write(partial.subarray(sent, ++sent)).catch(() => {});
    await new Promise((r) => setTimeout(r, 25));
  }
  ok(slow.ended && sent < partial.length, `slowloris still connected after ${sent} bytes`);
  deepStrictEqual(await named.next(), "Slow has left");
  // The named client sat idle through all of it and is still served.
  deepStrictEqual(await list(named), "home");
});
