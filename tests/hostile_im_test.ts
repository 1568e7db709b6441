/**
 * The IM server against strangers (SPEC.md 6.3, 6.4): names and statuses that
 * would reach others with control characters or at any length are refused, a
 * conversation lives only while it has members, a user is in at most
 * `--max-conversations`, `--max-users` caps the server, presence changes are
 * coalesced, and no reply is longer than the client accepts. Every attack is
 * bounded in count and time, and a normal pair of users is served during and
 * after it.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import {
  encodeIm,
  IM_CLIENT_MAX_LINE_BYTES,
  IM_MAX_STATUS_BYTES,
  IM_MAX_USERNAME_BYTES,
  IM_TEXTS,
  type ImClientMessage,
  ImLineDecoder,
  type ImServerMessage,
  parseImLine,
} from "../protocols/im.ts";
import type { FrameDecoder } from "../protocols/frames.ts";
import { serveIm } from "../servers/im.ts";
import { Peer, waitUntil } from "./_helpers.ts";

/** Decodes server lines into messages, recording each line's length. */
class ImDecoder implements FrameDecoder<ImServerMessage> {
  #lines = new ImLineDecoder({ maxLineBytes: IM_CLIENT_MAX_LINE_BYTES });
  longest = 0;
  bytes = 0;
  decode(chunk: Uint8Array) {
    this.bytes += chunk.length;
    return this.#lines.decode(chunk).map((l) => {
      this.longest = Math.max(this.longest, new TextEncoder().encode(l).length);
      return parseImLine(l) as ImServerMessage;
    });
  }
  end() {}
}

type Client = Peer<ImServerMessage> & {
  decoder: ImDecoder;
  send(m: ImClientMessage): Promise<void>;
  line(text: string): Promise<void>;
  expect(...m: ImServerMessage[]): Promise<void>;
};

async function connect(server: { addr: Deno.Addr }): Promise<Client> {
  const decoder = new ImDecoder();
  const peer = await Peer.connect(server.addr, decoder) as Client;
  peer.decoder = decoder;
  peer.send = (m) => peer.write(encodeIm(m));
  peer.line = (text) => peer.write(new TextEncoder().encode(`${text}\n`));
  peer.expect = async (...expected) => deepStrictEqual(await peer.take(expected.length), expected);
  return peer;
}

async function register(server: { addr: Deno.Addr }, name: string, status = "on"): Promise<Client> {
  const c = await connect(server);
  await c.send({ command: "REGISTER", username: name, status });
  deepStrictEqual((await c.next()).command, "ONLINE_USERS");
  return c;
}

/** Skips ONLINE_USERS updates (they come when presence changes) and returns the next other message. */
async function nextNonPresence(c: Client, ms = 5000): Promise<ImServerMessage> {
  while (true) {
    const m = await c.next(ms);
    if (m.command !== "ONLINE_USERS") return m;
  }
}

const error = (text: string): ImServerMessage => ({ command: "ERROR", text });

/** A pair of normal users in one conversation; `ping` proves a message gets through. */
async function pair(server: { addr: Deno.Addr }) {
  const alice = await register(server, "alice");
  const bob = await register(server, "bob");
  await alice.send({ command: "INVITE", users: ["bob"] });
  const invitation = await nextNonPresence(bob);
  deepStrictEqual(invitation.command, "INVITATION");
  const id = (invitation as { conversation: number }).conversation;
  deepStrictEqual((await nextNonPresence(alice)).command, "INVITATION");
  await bob.send({ command: "JOIN", conversation: id });
  let n = 0;
  const ping = async () => {
    const message = `ping ${n++}`;
    await alice.send({ command: "SEND_MESSAGE", conversation: id, message });
    deepStrictEqual(await nextNonPresence(bob), {
      command: "MESSAGE",
      conversation: id,
      sender: "alice",
      message,
    });
    // alice's own copy, taken out wherever it is among what she received.
    const echo = (m: ImServerMessage) => m.command === "MESSAGE" && m.message === message;
    await alice.waitFor(() => alice.frames.some(echo), 5000, "alice's copy");
    alice.frames.splice(alice.frames.findIndex(echo), 1);
  };
  await ping();
  return {
    alice,
    bob,
    id,
    ping,
    async [Symbol.asyncDispose]() {
      await alice.close();
      await bob.close();
    },
  };
}

Deno.test("serveIm() refuses unsafe or over-long usernames and statuses with ERROR, and the connection stays", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using watcher = await register(server, "watcher");
  await using stranger = await connect(server);
  const badNames = [
    "evil\u202egnp", // right-to-left override
    "bell\x07",
    "esc\x1b[2J",
    "del\x7f",
    "c1\u0085",
    "iso\u2066",
    "\ud800", // a lone surrogate: not UTF-8
    "x".repeat(IM_MAX_USERNAME_BYTES + 1),
    "é".repeat(IM_MAX_USERNAME_BYTES / 2) + "x",
    "",
    "two words",
  ];
  for (const name of badNames) {
    await stranger.send({ command: "REGISTER", username: name, status: "on" });
    await stranger.expect(error(IM_TEXTS.badUsername));
  }
  const badStatuses = ["\x1b]0;title\x07", "rlo\u202e", "s".repeat(IM_MAX_STATUS_BYTES + 1)];
  for (const status of badStatuses) {
    await stranger.send({ command: "REGISTER", username: "ok", status });
    await stranger.expect(error(IM_TEXTS.badStatus));
  }
  // Bytes that are not UTF-8 inside the JSON string.
  await stranger.write(
    new Uint8Array([
      ...new TextEncoder().encode('REGISTER ["a'),
      0xff,
      0x22,
      0x2c,
      0x22,
      0x22,
      0x5d,
      0x0a,
    ]),
  );
  await stranger.expect(error(IM_TEXTS.badUsername));
  // Still unregistered, still connected.
  await stranger.send({ command: "LIST_CONVERSATIONS" });
  await stranger.expect(error(IM_TEXTS.registerFirst));
  const longest = "é".repeat(IM_MAX_USERNAME_BYTES / 2);
  const fullStatus = "s".repeat(IM_MAX_STATUS_BYTES);
  await stranger.send({ command: "REGISTER", username: longest, status: fullStatus });
  const everyone = { watcher: "on", [longest]: fullStatus };
  await stranger.expect({ command: "ONLINE_USERS", users: everyone });
  await stranger.send({ command: "STATUS", status: "bad\u2067" });
  await stranger.expect(error(IM_TEXTS.badStatus));
  await stranger.send({ command: "STATUS", status: "x".repeat(60_000) });
  await stranger.expect(error(IM_TEXTS.badStatus));
  // The watcher only ever saw the good name and status.
  await watcher.expect({ command: "ONLINE_USERS", users: everyone });
  deepStrictEqual(server.onlineUsers(), everyone);
});

Deno.test("serveIm() the inviter is a member from its INVITE on; pending invitations do not keep a conversation", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using alice = await register(server, "alice");
  await using bob = await register(server, "bob");
  await alice.send({ command: "INVITE", users: ["bob"] });
  const invitation = { command: "INVITATION", conversation: 1, inviter: "alice" } as const;
  deepStrictEqual(await nextNonPresence(alice), invitation);
  deepStrictEqual(await nextNonPresence(bob), invitation);
  deepStrictEqual(server.conversations(), { "1": ["alice"] });
  // The inviter may speak at once; its JOIN is accepted and changes nothing.
  await alice.send({ command: "SEND_MESSAGE", conversation: 1, message: "hi" });
  deepStrictEqual(await nextNonPresence(alice), {
    command: "MESSAGE",
    conversation: 1,
    sender: "alice",
    message: "hi",
  });
  await alice.send({ command: "JOIN", conversation: 1 });
  await alice.send({ command: "LIST_CONVERSATIONS" });
  deepStrictEqual(await nextNonPresence(alice), {
    command: "CONVERSATIONS",
    conversations: { "1": ["alice"] },
  });
  // The only member leaves: bob's pending invitation does not keep it.
  await alice.send({ command: "LEAVE", conversation: 1 });
  await alice.send({ command: "LIST_CONVERSATIONS" });
  deepStrictEqual(await nextNonPresence(alice), { command: "CONVERSATIONS", conversations: {} });
  await bob.send({ command: "JOIN", conversation: 1 });
  deepStrictEqual(await nextNonPresence(bob), error(IM_TEXTS.noConversation(1)));
  // An inviter who goes offline takes its conversation along.
  await using carol = await register(server, "carol");
  await carol.send({ command: "INVITE", users: ["bob"] });
  deepStrictEqual((await nextNonPresence(bob)).command, "INVITATION");
  deepStrictEqual(server.conversations(), { "2": ["carol"] });
  await carol.send({ command: "GOODBYE" });
  await carol.closedByServer();
  deepStrictEqual(server.conversations(), {});
});

Deno.test("serveIm() under an INVITE flood a spammer holds --max-conversations, the rest are ERRORs, all go when it leaves, and a pair is served", async () => {
  const max = 100;
  await using server = serveIm({ port: 0, presenceIntervalMs: 0, maxConversations: max });
  await using normal = await pair(server);
  const spammer = await register(server, "spammer");
  const FLOOD = 3000;
  const lines = new Uint8Array(
    Array.from({ length: FLOOD }, () => [...encodeIm({ command: "INVITE", users: ["alice"] })])
      .flat(),
  );
  const written = spammer.write(lines);
  for (let i = 0; i < 5; i++) await normal.ping(); // served while the flood is read
  await written;
  // The spammer gets exactly `max` invitations (it is a member of each) and an ERROR for the rest.
  const replies = () => spammer.frames.filter((m) => m.command !== "ONLINE_USERS");
  await spammer.waitFor(() => replies().length >= FLOOD, 20_000, `${FLOOD} replies`);
  deepStrictEqual(replies().filter((m) => m.command === "INVITATION").length, max);
  deepStrictEqual(
    replies().filter((m) => m.command === "ERROR"),
    Array(FLOOD - max).fill(error(IM_TEXTS.tooManyConversations(max))),
  );
  deepStrictEqual(Object.keys(server.conversations()).length, max + 1);
  // alice got `max` invitations too; she can join all but one (she is in one already).
  const invited: number[] = [];
  while (invited.length < max) {
    const m = await nextNonPresence(normal.alice);
    if (m.command === "INVITATION") invited.push(m.conversation as number);
  }
  for (const id of invited) await normal.alice.send({ command: "JOIN", conversation: id });
  await normal.alice.send({ command: "LIST_CONVERSATIONS" });
  deepStrictEqual(
    await nextNonPresence(normal.alice),
    error(IM_TEXTS.tooManyConversations(max)),
  );
  deepStrictEqual((await nextNonPresence(normal.alice)).command, "CONVERSATIONS");
  await normal.ping();
  // The spammer leaves: every conversation it made goes (alice leaves hers with it).
  await spammer.close();
  await waitUntil(
    () =>
      Object.keys(server.conversations()).length === 1 ||
      Object.values(server.conversations()).every((m) => !m.includes("spammer")),
    5000,
    "the spammer's conversations to end",
  );
  for (const id of invited) await normal.alice.send({ command: "LEAVE", conversation: id });
  await normal.ping();
  deepStrictEqual(Object.keys(server.conversations()), [String(normal.id)]);
});

Deno.test("serveIm() coalesces presence: 300 registrations within moments reach a watcher as a few ONLINE_USERS", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  await using watcher = await register(server, "watcher");
  const N = 300;
  const started = performance.now();
  const clients = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const c = await connect(server);
      await c.send({ command: "REGISTER", username: `u${i}`, status: "on" });
      return c;
    }),
  );
  try {
    // Each newcomer's first ONLINE_USERS comes at once and holds itself.
    for (const [i, c] of clients.entries()) {
      await c.waitFor(() => c.frames.length > 0, 10_000, "the first ONLINE_USERS");
      const first = c.frames[0];
      ok(first.command === "ONLINE_USERS" && `u${i}` in first.users);
    }
    let pushes = 0;
    while (true) {
      const m = await watcher.next(10_000);
      ok(m.command === "ONLINE_USERS");
      pushes++;
      if (Object.keys(m.users).length === N + 1) break;
    }
    const elapsed = performance.now() - started;
    // One push per 200 ms window at most (and one for the window that was open).
    ok(pushes <= Math.ceil(elapsed / 200) + 1, `${pushes} pushes in ${elapsed.toFixed(0)} ms`);
    // Every client ends up with the whole list.
    for (const c of clients) {
      await c.waitFor(
        () =>
          c.frames.some((m) =>
            m.command === "ONLINE_USERS" && Object.keys(m.users).length === N + 1
          ),
        10_000,
        "the full list",
      );
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
});

Deno.test("serveIm() --max-users: a REGISTER past the cap is an ERROR and may try again later", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0, maxUsers: 2 });
  await using _a = await register(server, "a");
  const b = await register(server, "b");
  await using c = await connect(server);
  await c.send({ command: "REGISTER", username: "c", status: "on" });
  await c.expect(error(IM_TEXTS.serverFull(2)));
  await b.send({ command: "GOODBYE" });
  await b.closedByServer();
  await waitUntil(() => Object.keys(server.onlineUsers()).length === 1, 5000, "b to go");
  await c.send({ command: "REGISTER", username: "c", status: "on" });
  deepStrictEqual(await c.next(), { command: "ONLINE_USERS", users: { a: "on", c: "on" } });
  await b.close();
});

Deno.test("serveIm() never sends a line longer than the client accepts: CONVERSATIONS is cut to fit and says so", async () => {
  const maxReplyBytes = 2048;
  await using server = serveIm({ port: 0, presenceIntervalMs: 0, maxReplyBytes });
  await using normal = await pair(server);
  await using many = await register(server, "m".repeat(IM_MAX_USERNAME_BYTES));
  for (let i = 0; i < 99; i++) await many.send({ command: "INVITE", users: ["alice"] });
  await many.send({ command: "LIST_CONVERSATIONS" });
  let reply: ImServerMessage;
  do reply = await many.next(); while (reply.command !== "CONVERSATIONS");
  const shown = Object.keys(reply.conversations).length;
  ok(shown > 10 && shown < 100, `${shown} conversations shown`);
  deepStrictEqual(await nextNonPresence(many), error(IM_TEXTS.conversationsCut(shown, 100)));
  ok(many.decoder.longest <= maxReplyBytes, `a line of ${many.decoder.longest} bytes`);
  await normal.ping();
});

Deno.test("IM limits: the biggest ONLINE_USERS at the default caps fits the client's line limit", () => {
  // 5,000 users, every name and status at its byte limit and made of characters JSON escapes.
  const users: Record<string, string> = {};
  for (let i = 0; i < 5000; i++) {
    const tag = String(i);
    users['"'.repeat(IM_MAX_USERNAME_BYTES - tag.length) + tag] = "\\".repeat(IM_MAX_STATUS_BYTES);
  }
  const line = encodeIm({ command: "ONLINE_USERS", users });
  ok(line.length - 1 <= IM_CLIENT_MAX_LINE_BYTES, `${line.length} bytes`);
});

Deno.test("serveIm() --register-timeout closes a connection that never registers; --frame-timeout closes a slowloris; registered idle users stay", async () => {
  await using server = serveIm({
    port: 0,
    presenceIntervalMs: 0,
    registerTimeoutMs: 300,
    frameTimeoutMs: 300,
  });
  await using idle = await register(server, "idle");
  await using silent = await connect(server);
  await using refused = await connect(server);
  await refused.send({ command: "REGISTER", username: "bad\x07", status: "" });
  await refused.expect(error(IM_TEXTS.badUsername));
  await silent.expect(error(IM_TEXTS.registerTimeout(0.3)));
  await silent.closedByServer(2000);
  await refused.expect(error(IM_TEXTS.registerTimeout(0.3)));
  await refused.closedByServer(2000);
  // A registered user sending a line one byte at a time is closed before the line completes.
  const slow = await register(server, "slow");
  const partial = encodeIm({ command: "STATUS", status: "x".repeat(40) });
  let sent = 0;
  while (!slow.ended && sent < partial.length - 1) {
    await slow.write(partial.subarray(sent, ++sent)).catch(() => {});
    await new Promise((r) => setTimeout(r, 25));
  }
  ok(slow.ended && sent < partial.length - 1, `slowloris still connected after ${sent} bytes`);
  await slow.close();
  await waitUntil(() => !("slow" in server.onlineUsers()), 2000, "slow to go offline");
  // The idle user sat through it and is still served.
  await idle.send({ command: "LIST_CONVERSATIONS" });
  deepStrictEqual(await nextNonPresence(idle), { command: "CONVERSATIONS", conversations: {} });
});

Deno.test("serveIm() cuts ONLINE_USERS to the reply limit when the caps were raised past it", async () => {
  const maxReplyBytes = 300;
  await using server = serveIm({ port: 0, presenceIntervalMs: 0, maxReplyBytes });
  const users: Client[] = [];
  try {
    for (let i = 0; i < 30; i++) users.push(await register(server, `user-${i}`, "online"));
    await users[0].send({ command: "STATUS", status: "last" });
    await users[0].waitFor(
      () =>
        users[0].frames.some((m) => m.command === "ONLINE_USERS" && m.users["user-0"] === "last"),
      5000,
      "the status change",
    );
    for (const c of users) ok(c.decoder.longest <= maxReplyBytes, `a line of ${c.decoder.longest}`);
    deepStrictEqual(Object.keys(server.onlineUsers()).length, 30); // cut on the wire only
  } finally {
    for (const c of users) await c.close();
  }
});
