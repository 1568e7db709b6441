import { deepStrictEqual, match, ok, throws } from "node:assert/strict";
import { concatBytes } from "../net/bytes.ts";
import fc from "fast-check";
import {
  CHANNEL_FRAME_BYTES,
  CHANNEL_TEXTS,
  ChannelDecoder,
  decodeChannelFrame,
  encodeChannelFrame,
  parseChannelCommand,
} from "../protocols/channel.ts";
import { FrameError } from "../protocols/errors.ts";
import { CHANNEL_SERVER_TEXTS, listFrames } from "../protocols/channel.ts";
import { serveChannel } from "../servers/channel.ts";
import {
  CHANNEL_HELP,
  CHANNEL_PROMPT,
  CHANNEL_WIPE,
  connectChannel,
  runChannelSession,
} from "../clients/channel.ts";
import { EntryProcess, Peer, portOf, typedInput, waitUntil } from "./_helpers.ts";
import { bufferScreen, ClientConsole } from "../cli/console.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const frame = encodeChannelFrame;

// ---- codec ----------------------------------------------------------------------------------

Deno.test("encodeChannelFrame() pads with spaces to exactly 200 bytes", () => {
  const f = frame("Hello world!");
  deepStrictEqual(f.length, CHANNEL_FRAME_BYTES);
  deepStrictEqual(text(f), "Hello world!" + " ".repeat(188));
  deepStrictEqual(frame("").every((b) => b === 0x20), true);
  deepStrictEqual(text(frame("x".repeat(200))), "x".repeat(200));
});

Deno.test("encodeChannelFrame() refuses a message over 200 bytes instead of truncating", () => {
  throws(() => frame("x".repeat(201)), RangeError);
  throws(() => frame("é".repeat(101)), RangeError); // 202 UTF-8 bytes
});

Deno.test("decodeChannelFrame() strips trailing spaces only", () => {
  deepStrictEqual(decodeChannelFrame(frame("  two  spaces\t")), "  two  spaces\t");
  deepStrictEqual(decodeChannelFrame(frame("line1\nline2")), "line1\nline2");
});

Deno.test("ChannelDecoder.decode() gives the same frames for every chunking", () => {
  fc.assert(
    fc.property(
      fc.array(fc.string({ maxLength: 60 }).map((s) => s.trimEnd()), { maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 450 }), { minLength: 1, maxLength: 10 }),
      (messages, sizes) => {
        const bytes = concatBytes(messages.map((m) => frame(m)));
        const d = new ChannelDecoder();
        const out: string[] = [];
        for (let o = 0, i = 0; o < bytes.length; i++) {
          const n = sizes[i % sizes.length];
          out.push(...d.decode(bytes.subarray(o, o + n)));
          o += n;
        }
        d.end();
        deepStrictEqual(out, messages);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("ChannelDecoder.decode() joins a frame split into 1-byte reads and splits many frames in one read", () => {
  const bytes = concatBytes([frame("one"), frame("two"), frame("three")]);
  const d = new ChannelDecoder();
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i++) out.push(...d.decode(bytes.subarray(i, i + 1)));
  deepStrictEqual(out, ["one", "two", "three"]);
  deepStrictEqual(new ChannelDecoder().decode(bytes), ["one", "two", "three"]);
});

Deno.test("ChannelDecoder fuzz: random bytes give whole frames or a FrameError at end, never anything else", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 1000 }),
      fc.integer({ min: 1, max: 300 }),
      (bytes, step) => {
        const d = new ChannelDecoder();
        let count = 0;
        for (let o = 0; o < bytes.length; o += step) {
          for (const m of d.decode(bytes.subarray(o, o + step))) {
            ok(typeof m === "string");
            count++;
          }
        }
        deepStrictEqual(count, Math.floor(bytes.length / 200));
        if (bytes.length % 200 === 0) d.end();
        else throws(() => d.end(), FrameError);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("parseChannelCommand() separates control messages from chat", () => {
  deepStrictEqual(parseChannelCommand("/join 168 tas"), { kind: "join", channel: "168 tas" });
  deepStrictEqual(parseChannelCommand("/join"), { kind: "join", channel: "" });
  deepStrictEqual(parseChannelCommand("/join   "), { kind: "join", channel: "" });
  deepStrictEqual(parseChannelCommand("/create tas"), { kind: "create", channel: "tas" });
  deepStrictEqual(parseChannelCommand("/list"), { kind: "list" });
  deepStrictEqual(parseChannelCommand("/foo bar"), { kind: "invalid", command: "/foo" });
  deepStrictEqual(parseChannelCommand("/"), { kind: "invalid", command: "/" });
  deepStrictEqual(parseChannelCommand("hello /join"), { kind: "chat", text: "hello /join" });
});

Deno.test("listFrames() joins names with newlines and splits only when one frame is full", () => {
  deepStrictEqual(listFrames([]).map(decodeChannelFrame), [""]);
  deepStrictEqual(listFrames(["a", "b c"]).map(decodeChannelFrame), ["a\nb c"]);
  const names = Array.from({ length: 30 }, (_, i) => `channel-${i}`);
  const frames = listFrames(names).map(decodeChannelFrame);
  ok(frames.length > 1);
  deepStrictEqual(frames.join("\n").split("\n"), names);
});

Deno.test("listFrames() with maxFrames cuts between names and ends with the count left out", () => {
  const names = Array.from({ length: 100 }, (_, i) => `room-${String(i).padStart(3, "0")}`);
  // 22 of these names fill a frame: 100 need 5 frames.
  for (const maxFrames of [2, 3, 4]) {
    const frames = listFrames(names, { maxFrames }).map(decodeChannelFrame);
    ok(frames.length <= maxFrames, `${frames.length} frames for ${maxFrames}`);
    const note = frames.pop()!;
    const listed = frames.join("\n").split("\n");
    deepStrictEqual(listed, names.slice(0, listed.length));
    deepStrictEqual(note, CHANNEL_SERVER_TEXTS.listCapped(names.length - listed.length));
  }
  // A list that fits is not cut, whatever the limit.
  deepStrictEqual(listFrames(names.slice(0, 5), { maxFrames: 2 }).map(decodeChannelFrame), [
    names.slice(0, 5).join("\n"),
  ]);
  deepStrictEqual(
    listFrames(names, { maxFrames: 1000 }).map(decodeChannelFrame).join("\n"),
    names.join("\n"),
  );
});

// ---- server over real sockets ---------------------------------------------------------------

/**
 * Asserts `peer` received nothing more: its `/list` reply must be the next frame. Deterministic,
 * because the server queues whatever earlier commands caused before it answers this `/list`.
 */
async function nothingElse(peer: Peer<string>, channels: string): Promise<void> {
  await peer.write(frame("/list"));
  deepStrictEqual(await peer.next(), channels);
}

/** Sends `/list` and waits for its reply, so everything `peer` sent before is processed. */
async function settled(peer: Peer<string>, ...messages: string[]): Promise<void> {
  await peer.write(concatBytes([...messages.map((m) => frame(m)), frame("/list")]));
  await peer.next();
}

async function client(server: { addr: Deno.Addr }, name: string): Promise<Peer<string>> {
  const peer = await Peer.connect(server.addr, new ChannelDecoder());
  await peer.write(frame(name));
  return peer;
}

Deno.test("serveChannel() two-client scenario: create, join, chat both ways", async () => {
  await using server = serveChannel({ port: 0 });
  await using alice = await client(server, "Alice");
  await using kay = await client(server, "Kay");
  await alice.write(frame("/create tas"));
  await alice.write(frame("/list"));
  deepStrictEqual(await alice.next(), "tas"); // also: the channel exists before Kay joins
  await kay.write(frame("/join tas"));
  deepStrictEqual(await alice.next(), "Kay has joined");
  await kay.write(frame("Hi!"));
  deepStrictEqual(await alice.next(), "[Kay] Hi!");
  await alice.write(frame("Hello!"));
  deepStrictEqual(await kay.next(), "[Alice] Hello!");
  await nothingElse(kay, "tas"); // a successful /join sends nothing back to the joiner
  await nothingElse(alice, "tas"); // and a chat is not echoed to its sender
});

Deno.test("serveChannel() answers every error with the exact text and changes nothing", async () => {
  await using server = serveChannel({ port: 0 });
  await using a = await client(server, "Panda");
  const ask = async (message: string) => {
    await a.write(frame(message));
    return await a.next();
  };
  deepStrictEqual(await ask("Hello world!"), CHANNEL_TEXTS.notInChannel);
  deepStrictEqual(
    await ask("Hello world!"),
    "Not currently in any channel. Must join a channel before sending messages.",
  );
  deepStrictEqual(await ask("/list"), "");
  deepStrictEqual(
    await ask("/join nowhere"),
    "No channel named nowhere exists. Try '/create nowhere'?",
  );
  deepStrictEqual(
    await ask("/join"),
    "/join command must be followed by the name of a channel to join.",
  );
  deepStrictEqual(
    await ask("/create"),
    "/create command must be followed by the name of a channel to create",
  );
  deepStrictEqual(
    await ask("/foo bar"),
    "/foo is not a valid control message. Valid messages are /create, /list, and /join.",
  );
  deepStrictEqual(
    await ask("/LIST"),
    "/LIST is not a valid control message. Valid messages are /create, /list, and /join.",
  );
  await a.write(frame("/create 168_tas"));
  deepStrictEqual(
    await ask("/create 168_tas"),
    "Room 168_tas already exists, so cannot be created.",
  );
  deepStrictEqual(await ask("/list"), "168_tas");
});

Deno.test("serveChannel() keeps membership when a command fails", async () => {
  await using server = serveChannel({ port: 0 });
  await using a = await client(server, "A");
  await using b = await client(server, "B");
  await settled(a, "/create AA");
  await b.write(frame("/join AA"));
  deepStrictEqual(await a.next(), "B has joined");
  await b.write(frame("/join missing"));
  deepStrictEqual(await b.next(), "No channel named missing exists. Try '/create missing'?");
  await b.write(frame("/create AA"));
  deepStrictEqual(await b.next(), "Room AA already exists, so cannot be created.");
  await b.write(frame("/join"));
  deepStrictEqual(await b.next(), CHANNEL_TEXTS.joinRequiresName);
  await b.write(frame("still here"));
  deepStrictEqual(await a.next(), "[B] still here");
  await nothingElse(a, "AA"); // no "B has left" was ever sent
});

Deno.test("serveChannel() sends leave and join notices on moves and disconnects", async () => {
  await using server = serveChannel({ port: 0 });
  await using a = await client(server, "A");
  await using b = await client(server, "B");
  await using c = await client(server, "C");
  await settled(a, "/create one");
  await settled(c, "/create two");
  await b.write(frame("/join one"));
  deepStrictEqual(await a.next(), "B has joined");
  await b.write(frame("/join two"));
  deepStrictEqual(await a.next(), "B has left");
  deepStrictEqual(await c.next(), "B has joined");
  await b.write(frame("/join two")); // already there: nothing happens
  await b.write(frame("/create three")); // leaves two, creates and joins three
  deepStrictEqual(await c.next(), "B has left");
  await b.write(frame("/join two"));
  deepStrictEqual(await c.next(), "B has joined");
  await b.close();
  deepStrictEqual(await c.next(), "B has left");
  await a.write(frame("/list"));
  // The first frame after the notices: nothing else came. "three" went with its last member.
  deepStrictEqual(await a.next(), "one\ntwo");
});

Deno.test("serveChannel() understands frames sent in random small pieces and many frames in one read", async () => {
  await using server = serveChannel({ port: 0 });
  await using a = await client(server, "A");
  await using b = await Peer.connect(server.addr, new ChannelDecoder());
  await settled(a, "/create room");
  const bytes = concatBytes([frame("B"), frame("/join room"), frame("first"), frame("second")]);
  const rand = fc.sample(fc.integer({ min: 1, max: 37 }), { numRuns: 200, seed: 7 });
  for (let o = 0, i = 0; o < bytes.length; i++) {
    await b.write(bytes.subarray(o, o + rand[i]));
    o += rand[i];
    await new Promise((r) => setTimeout(r, 0));
  }
  deepStrictEqual(await a.take(3), ["B has joined", "[B] first", "[B] second"]);
  const burst = concatBytes(Array.from({ length: 50 }, (_, i) => frame(`m${i}`)));
  await b.write(burst);
  deepStrictEqual(await a.take(50), Array.from({ length: 50 }, (_, i) => `[B] m${i}`));
});

Deno.test("serveChannel() refuses an empty or too-long name (the client may try again) and a too-long chat without truncating", async () => {
  await using server = serveChannel({ port: 0 });
  await using nameless = await client(server, "");
  deepStrictEqual(await nameless.next(), CHANNEL_SERVER_TEXTS.emptyName);
  await nameless.write(frame("n".repeat(65)));
  deepStrictEqual(await nameless.next(), CHANNEL_SERVER_TEXTS.nameTooLong);
  await using a = await client(server, "A");
  await using b = await client(server, "B");
  await settled(a, "/create r");
  // Still connected and unnamed: its next frame is its name.
  await nameless.write(concatBytes([frame("N"), frame("/join r")]));
  deepStrictEqual(await a.next(), "N has joined");
  await nameless.close();
  deepStrictEqual(await a.next(), "N has left");
  await b.write(frame("/join r"));
  deepStrictEqual(await a.next(), "B has joined");
  await b.write(frame("x".repeat(200)));
  match(await b.next(), /^Message not sent: with your name it is 204 bytes/);
  await nothingElse(a, "r");
});

Deno.test("serveChannel() drops a client that never reads; the rest of the room receives everything", async () => {
  await using server = serveChannel({ port: 0, maxQueueBytes: 64 * 1024 });
  await using sender = await client(server, "Sender");
  await using reader = await client(server, "Reader");
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
  await settled(sender, "/create busy");
  await reader.write(frame("/join busy"));
  deepStrictEqual(await sender.next(), "Reader has joined");
  await slow.write(concatBytes([frame("Slow"), frame("/join busy")]));
  deepStrictEqual(await sender.next(), "Slow has joined");
  deepStrictEqual(await reader.next(), "Slow has joined");
  let sent = 0;
  let seen = 0;
  const batch = 100; // 20 KB a round: the reader can never fall 64 KiB behind
  while (!sender.frames.includes("Slow has left") && sent < 200_000) {
    await sender.write(concatBytes(Array.from({ length: batch }, (_, i) => frame(`n${sent + i}`))));
    sent += batch;
    // The reader keeps up: everything sent so far arrives, in order.
    const got = await reader.take(batch, 10_000);
    for (const m of got) {
      if (m === "Slow has left") continue;
      deepStrictEqual(m, `[Sender] n${seen++}`);
    }
  }
  ok(sender.frames.includes("Slow has left"), `slow reader still connected after ${sent} messages`);
  await sender.write(frame("after"));
  const rest = await reader.waitFor(() => reader.frames.includes("[Sender] after"), 5000, "after")
    .then(() => reader.frames.splice(0));
  const chats = rest.filter((m) => m !== "Slow has left");
  for (const m of chats.slice(0, -1)) deepStrictEqual(m, `[Sender] n${seen++}`);
  deepStrictEqual(seen, sent);
  slow.close();
});

// ---- client --------------------------------------------------------------------------------

Deno.test("runChannelSession() overwrites the prompt with each message and refuses an over-long line", async () => {
  await using server = serveChannel({ port: 0 });
  await using other = await client(server, "Kay");
  using alice = await connectChannel("Alice", "127.0.0.1", portOf(server.addr));
  const output = bufferScreen();
  const typed = Promise.withResolvers<void>();
  async function* lines() {
    yield "/create tas";
    yield "y".repeat(201);
    yield "";
    await typed.promise;
  }
  const out = new ClientConsole({
    interactive: false,
    input: typedInput(lines()),
    output,
    plain: { prompt: CHANNEL_PROMPT, wipe: CHANNEL_WIPE, promptAfterLine: true },
  });
  const session = runChannelSession(alice, { console: out });
  await waitUntil(() => output.text.split(CHANNEL_PROMPT).length === 5, 3000, "three typed lines");
  // Kay joins once Alice's /create is done (they race otherwise).
  await waitUntil(() => server.channels().includes("tas"), 3000, "Alice's channel");
  await other.write(frame("/join tas"));
  await other.write(frame("Hi!"));
  await waitUntil(() => output.text.includes("[Kay] Hi!"), 3000, "Kay's chat");
  typed.resolve();
  deepStrictEqual(await session, { kind: "quit" });
  deepStrictEqual(
    output.text,
    CHANNEL_PROMPT + CHANNEL_PROMPT +
      `${CHANNEL_WIPE}Message not sent: it is 201 bytes and a message is at most 200.\n` +
      CHANNEL_PROMPT + CHANNEL_PROMPT +
      `${CHANNEL_WIPE}Kay has joined\n${CHANNEL_PROMPT}` +
      `${CHANNEL_WIPE}[Kay] Hi!\n${CHANNEL_PROMPT}`,
  );
});

Deno.test("runChannelSession() sends no blank chat; piped, /help goes to the server as typed", async () => {
  await using server = serveChannel({ port: 0 });
  await using kay = await client(server, "Kay");
  await kay.write(frame("/create tas"));
  await kay.write(frame("/list"));
  deepStrictEqual(await kay.next(), "tas"); // Kay is in tas before Alice speaks
  using alice = await connectChannel("Alice", "127.0.0.1", portOf(server.addr));
  const output = bufferScreen();
  const out = new ClientConsole({
    interactive: false,
    input: typedInput(["/join tas", "", "   ", "/help", "after"]),
    output,
    plain: { prompt: CHANNEL_PROMPT, wipe: CHANNEL_WIPE, promptAfterLine: true },
  });
  deepStrictEqual(await runChannelSession(alice, { console: out }), { kind: "quit" });
  deepStrictEqual(await kay.next(), "Alice has joined");
  deepStrictEqual(await kay.next(), "[Alice] after"); // no blank chat went out
  ok(!output.text.includes(CHANNEL_HELP[0]), output.text); // the terminal's /help is interactive only
});

Deno.test("servers/channel.ts and clients/channel.ts end to end: positional port, prompt bytes, disconnect text", async () => {
  await using server = EntryProcess.start("servers/channel.ts", ["0"], ["--allow-net"]);
  const port = await server.listeningPort();
  await using alice = EntryProcess.start(
    "clients/channel.ts",
    ["Alice", "127.0.0.1", String(port)],
    ["--allow-net"],
    {
      stdin: true,
    },
  );
  await alice.waitFor(/^\[Me\] $/);
  await alice.type("/create tas\n");
  await alice.type("/list\n");
  await alice.waitFor(/tas\n\[Me\] $/);
  deepStrictEqual(alice.output, "[Me] [Me] [Me] \r    \rtas\n[Me] ");
  deepStrictEqual((await server.stop("SIGINT")).code, 0);
  await alice.waitFor(/has disconnected/);
  deepStrictEqual((await alice.exited()).code, 1); // SPEC 7.2: the server closing is exit code 1
  ok(
    alice.output.endsWith(`\r    \rServer at 127.0.0.1:${port} has disconnected\n`),
    JSON.stringify(alice.output),
  );
});

Deno.test("clients/channel.ts says it is unable to connect", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = portOf(listener.addr);
  listener.close();
  await using c = EntryProcess.start("clients/channel.ts", ["Bob", "127.0.0.1", String(port)], [
    "--allow-net",
  ]);
  deepStrictEqual((await c.exited()).code, 1);
  deepStrictEqual(c.output, `Unable to connect to 127.0.0.1:${port}\n`);
});

Deno.test("serveChannel() answers a long unknown name or command with a reply cut to fit, and keeps the client", async () => {
  await using server = serveChannel({ port: 0 });
  await using a = await client(server, "A");
  const long = "x".repeat(150);
  await a.write(frame(`/join ${long}`));
  const reply = await a.next();
  deepStrictEqual(reply, `No channel named ${long} exists. Try '/create ${"x".repeat(8)}...`);
  deepStrictEqual(new TextEncoder().encode(reply).length, CHANNEL_FRAME_BYTES);
  await a.write(frame(`/${"y".repeat(199)}`));
  match(await a.next(), /^\/y+\.\.\.$/);
  await a.write(frame("/list"));
  deepStrictEqual(await a.next(), ""); // still connected
});
