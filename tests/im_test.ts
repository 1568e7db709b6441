import { deepStrictEqual, match } from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import {
  encodeIm,
  type ImClientMessage,
  ImLineDecoder,
  type ImServerMessage,
  parseImLine,
} from "../protocols/im.ts";
import type { FrameDecoder } from "../protocols/frames.ts";
import { IM_TEXTS } from "../protocols/im.ts";
import { type ImLink, ImService, type ImUser, serveIm } from "../servers/im.ts";
import { EntryProcess, Peer, waitUntil } from "./_helpers.ts";

/** Decodes server lines into messages. */
class ImDecoder implements FrameDecoder<ImServerMessage> {
  #lines = new ImLineDecoder();
  decode(chunk: Uint8Array) {
    return this.#lines.decode(chunk).map((l) => parseImLine(l) as ImServerMessage);
  }
  end() {}
}

type Client = Peer<ImServerMessage> & {
  send(m: ImClientMessage): Promise<void>;
  expect(...m: ImServerMessage[]): Promise<void>;
};

async function connect(server: { addr: Deno.Addr }): Promise<Client> {
  const peer = await Peer.connect(server.addr, new ImDecoder()) as Client;
  peer.send = (m) => peer.write(encodeIm(m));
  peer.expect = async (...expected) => deepStrictEqual(await peer.take(expected.length), expected);
  return peer;
}

async function register(
  server: { addr: Deno.Addr },
  name: string,
  status = "online",
): Promise<Client> {
  const c = await connect(server);
  await c.send({ command: "REGISTER", username: name, status });
  const first = await c.next();
  deepStrictEqual(first.command, "ONLINE_USERS");
  return c;
}

/**
 * Asserts `c` received nothing more: its CONVERSATIONS reply must be the next message. Deterministic,
 * because the server queues whatever earlier messages caused before it answers this request.
 */
async function nothingElse(c: Client, conversations: Record<string, string[]>): Promise<void> {
  await c.send({ command: "LIST_CONVERSATIONS" });
  await c.expect({ command: "CONVERSATIONS", conversations });
}

const online = (users: Record<string, string>): ImServerMessage => ({
  command: "ONLINE_USERS",
  users,
});
const error = (text: string): ImServerMessage => ({ command: "ERROR", text });

/** Reads ONLINE_USERS until one lists exactly `users` (changes within 200 ms come as one). */
async function seesOnline(c: Client, users: Record<string, string>): Promise<void> {
  while (true) {
    const m = await c.next();
    deepStrictEqual(m.command, "ONLINE_USERS");
    if (isDeepStrictEqual((m as { users: unknown }).users, users)) return;
  }
}

Deno.test("serveIm() three clients: registration, presence, invitations, messages, leaving", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using alice = await register(server, "alice");
  deepStrictEqual(server.onlineUsers(), { alice: "online" });
  await using bob = await register(server, "bob");
  await alice.expect(online({ alice: "online", bob: "online" }));
  // A taken name is refused and the connection stays unregistered; it may try another.
  await using dup = await connect(server);
  await dup.send({ command: "REGISTER", username: "bob", status: "x" });
  await dup.expect(error(IM_TEXTS.nameTaken("bob")));
  await dup.send({ command: "LIST_CONVERSATIONS" });
  await dup.expect(error(IM_TEXTS.registerFirst));
  await dup.send({ command: "REGISTER", username: "carol", status: "busy" });
  const everyone = online({ alice: "online", bob: "online", carol: "busy" });
  await dup.expect(everyone);
  await alice.expect(everyone);
  await bob.expect(everyone);
  const carol = dup;

  await bob.send({ command: "STATUS", status: "away" });
  const away = online({ alice: "online", bob: "away", carol: "busy" });
  for (const c of [alice, bob, carol]) await c.expect(away);

  // alice invites bob and an offline user: bob and alice get the invitation, alice hears about dave.
  await alice.send({ command: "INVITE", users: ["bob", "dave"] });
  await alice.expect(
    { command: "INVITATION", conversation: 1, inviter: "alice" },
    error(IM_TEXTS.notOnline("dave")),
  );
  await bob.expect({ command: "INVITATION", conversation: 1, inviter: "alice" });
  await nothingElse(carol, { "1": ["alice"] }); // the inviter is a member from its INVITE on

  // carol was not invited: she cannot join or send.
  await carol.send({ command: "JOIN", conversation: 1 });
  await carol.expect(error(IM_TEXTS.notInvited(1)));
  await carol.send({ command: "SEND_MESSAGE", conversation: 1, message: "let me in" });
  await carol.expect(error(IM_TEXTS.notMember(1)));
  await carol.send({ command: "JOIN", conversation: 99 });
  await carol.expect(error(IM_TEXTS.noConversation(99)));

  await alice.send({ command: "JOIN", conversation: 1 }); // accepted, changes nothing
  await bob.send({ command: "JOIN", conversation: "1" });
  await bob.send({ command: "LIST_CONVERSATIONS" });
  await bob.expect({ command: "CONVERSATIONS", conversations: { "1": ["alice", "bob"] } });
  await bob.send({ command: "SEND_MESSAGE", conversation: 1, message: "hi all" });
  const hi: ImServerMessage = {
    command: "MESSAGE",
    conversation: 1,
    sender: "bob",
    message: "hi all",
  };
  await alice.expect(hi);
  await bob.expect(hi);
  await nothingElse(carol, { "1": ["alice", "bob"] });

  // bob leaves; alice's message reaches only her; the last member leaving removes the conversation.
  await bob.send({ command: "LEAVE", conversation: 1 });
  await nothingElse(bob, { "1": ["alice"] }); // the LEAVE is done before alice speaks
  await alice.send({ command: "SEND_MESSAGE", conversation: 1, message: "alone" });
  await alice.expect({ command: "MESSAGE", conversation: 1, sender: "alice", message: "alone" });
  await nothingElse(bob, { "1": ["alice"] });
  await alice.send({ command: "LEAVE", conversation: 1 });
  await alice.send({ command: "LIST_CONVERSATIONS" });
  await alice.expect({ command: "CONVERSATIONS", conversations: {} });
  deepStrictEqual(server.conversations(), {});
});

Deno.test("serveIm() a killed client leaves its conversations and presence; GOODBYE does the same", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using alice = await register(server, "alice");
  const bob = await register(server, "bob");
  await using carol = await register(server, "carol");
  const everyone = { alice: "online", bob: "online", carol: "online" };
  await seesOnline(alice, everyone);
  await seesOnline(bob, everyone);
  await alice.send({ command: "INVITE", users: ["bob", "carol"] });
  await alice.next();
  await bob.next();
  await carol.next();
  for (const c of [alice, bob, carol]) await c.send({ command: "JOIN", conversation: 1 });
  await waitUntil(() => (server.conversations()["1"] ?? []).length === 3, 2000, "three members");
  await bob.close(); // killed: no GOODBYE
  await alice.expect(online({ alice: "online", carol: "online" }));
  await carol.expect(online({ alice: "online", carol: "online" }));
  deepStrictEqual(server.conversations(), { "1": ["alice", "carol"] });
  await carol.send({ command: "GOODBYE" });
  await carol.closedByServer();
  await alice.expect(online({ alice: "online" }));
  deepStrictEqual(server.conversations(), { "1": ["alice"] });
});

Deno.test("serveIm() answers bad input with ERROR and keeps the connection; only an oversized line closes it", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0, maxLineBytes: 1024 });
  await using alice = await register(server, "alice");
  const enc = new TextEncoder();
  for (
    const [line, expected] of [
      ["FOO\n", /^unknown command FOO$/],
      ["REGISTER not json\n", /^invalid JSON after REGISTER/],
      ['JOIN "x"\n', /^JOIN expects \[convId\]/],
      ['REGISTER ["alice","online"]\n', /^already registered as alice$/],
      ['MESSAGE [1,"a","b"]\n', /^MESSAGE is sent by the server, not by clients$/],
    ] as const
  ) {
    await alice.write(enc.encode(line));
    const m = await alice.next();
    deepStrictEqual(m.command, "ERROR");
    match((m as { text: string }).text, expected);
  }
  await alice.send({ command: "LIST_CONVERSATIONS" });
  await alice.expect({ command: "CONVERSATIONS", conversations: {} });
  await using other = await register(server, "other");
  await alice.next();
  await other.write(enc.encode("x".repeat(2000)));
  const m = await other.next();
  match((m as { text: string }).text, /^Cannot decode frame: line exceeds limit of 1024 bytes/);
  await other.closedByServer();
  await alice.expect(online({ alice: "online" }));
});

Deno.test("serveIm() pushes ONLINE_USERS periodically", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 100 });
  await using alice = await register(server, "alice");
  await alice.expect(online({ alice: "online" }), online({ alice: "online" }));
});

Deno.test("serveIm() handles lines split into single bytes and many lines in one write", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using a = await connect(server);
  const bytes = new Uint8Array([
    ...encodeIm({ command: "REGISTER", username: "a", status: "s" }),
    ...encodeIm({ command: "INVITE", users: ["a"] }),
    ...encodeIm({ command: "JOIN", conversation: 1 }),
  ]);
  for (let i = 0; i < bytes.length; i++) await a.write(bytes.subarray(i, i + 1));
  await a.expect(online({ a: "s" }), { command: "INVITATION", conversation: 1, inviter: "a" });
  await a.write(
    new Uint8Array(
      Array.from(
        { length: 20 },
        (_, i) => [...encodeIm({ command: "SEND_MESSAGE", conversation: 1, message: `m${i}` })],
      ).flat(),
    ),
  );
  deepStrictEqual(
    (await a.take(20)).map((m) => (m as { message: string }).message),
    Array.from({ length: 20 }, (_, i) => `m${i}`),
  );
});

Deno.test("ImService encodes a SEND_MESSAGE once: every member's queue gets the same bytes, as encodeIm writes them", () => {
  const service = new ImService({ presenceIntervalMs: 0 });
  const queues = new Map<string, Uint8Array[]>();
  const link = (name: string): ImLink => {
    queues.set(name, []);
    return {
      send: (bytes) => queues.get(name)!.push(bytes) > 0,
      end: () => Promise.resolve(),
      drain: () => Promise.resolve(),
    };
  };
  const names = Array.from({ length: 5 }, (_, i) => `u${i}`);
  const users = names.map((n) => service.rooms.register(link(n), n, "online") as ImUser);
  service.act(users[0], { command: "INVITE", users: names.slice(1) });
  for (const user of users.slice(1)) service.act(user, { command: "JOIN", conversation: 1 });
  for (const queue of queues.values()) queue.length = 0;
  const message = 'quote " backslash \\ LF \n bidi \u202e é';
  service.act(users[2], { command: "SEND_MESSAGE", conversation: 1, message });
  const frames = [...queues.values()].map((queue) => {
    deepStrictEqual(queue.length, 1);
    return queue[0];
  });
  deepStrictEqual(new Set(frames).size, 1); // one Uint8Array, shared by every queue
  deepStrictEqual(
    frames[0],
    encodeIm({ command: "MESSAGE", conversation: 1, sender: "u2", message }),
  );
});

Deno.test("serveIm() handles no line after GOODBYE, even in the same read", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using a = await register(server, "a");
  await using b = await register(server, "b");
  await a.expect(online({ a: "online", b: "online" }));
  await a.send({ command: "INVITE", users: ["b"] });
  await a.expect({ command: "INVITATION", conversation: 1, inviter: "a" });
  await b.expect({ command: "INVITATION", conversation: 1, inviter: "a" });
  await b.send({ command: "JOIN", conversation: 1 });
  await nothingElse(b, { "1": ["a", "b"] });
  await a.write(
    new Uint8Array([
      ...encodeIm({ command: "GOODBYE" }),
      ...encodeIm({ command: "SEND_MESSAGE", conversation: 1, message: "after goodbye" }),
    ]),
  );
  await a.closedByServer();
  await b.expect(online({ b: "online" }));
  await nothingElse(b, { "1": ["b"] });
});

Deno.test("servers/im.ts and clients/im.ts as processes: invite, accept, chat with conversation and sender on each line", async () => {
  await using server = EntryProcess.start("servers/im.ts", ["--port", "0"], ["--allow-net"]);
  const port = String(await server.listeningPort());
  const start = (user: string) =>
    EntryProcess.start("clients/im.ts", ["--user", user, "--port", port], ["--allow-net"], {
      stdin: true,
    });
  await using alice = start("alice");
  await alice.waitFor(/Online: alice \(online\)\n/);
  await using bob = start("bob");
  await alice.waitFor(/Online: alice \(online\), bob \(online\)\n/);
  await alice.type("/invite bob\n");
  await alice.waitFor(/\[1\] conversation started; you are in it\n/);
  await bob.waitFor(/\[1\] alice invites you: \/accept 1\n/);
  await bob.type("/accept 1\n");
  await bob.type("/list\n");
  await bob.waitFor(/\[1\] alice, bob\n/);
  await bob.type("hello alice\n");
  await alice.waitFor(/\[1\] bob: hello alice\n/);
  await alice.type("/say 1 hi bob\n");
  await bob.waitFor(/\[1\] alice: hi bob\n/);
  await bob.type("/status away\n");
  await alice.waitFor(/Online: alice \(online\), bob \(away\)\n/);
  const beforeQuit = alice.mark();
  await bob.type("/quit\n");
  deepStrictEqual((await bob.exited()).code, 0);
  await alice.waitFor(/Online: alice \(online\)\n/, 10000, beforeQuit);
  await alice.closeStdin();
  deepStrictEqual((await alice.exited()).code, 0);
  deepStrictEqual((await server.stop("SIGINT")).code, 0);
});

Deno.test("serveIm() says goodbye with an ERROR when it shuts down", async () => {
  const server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using alice = await register(server, "alice");
  await server.shutdown();
  await alice.expect(error(IM_TEXTS.shuttingDown));
  await alice.closedByServer();
});
