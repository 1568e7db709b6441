/**
 * SPEC.md 8.2: channel and IM servers as one cluster over a real nats-server.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import {
  encodeIm,
  IM_TEXTS,
  type ImClientMessage,
  ImLineDecoder,
  type ImServerMessage,
  parseImLine,
} from "../protocols/im.ts";
import type { FrameDecoder } from "../protocols/frames.ts";
import { type ChannelServer, serveChannel } from "../servers/channel.ts";
import { type ImServer, serveIm } from "../servers/im.ts";
import { Cluster } from "../servers/_cluster.ts";
import { getLogger } from "@logtape/logtape";
import { EntryProcess, Peer, waitUntil } from "./_helpers.ts";
import { NatsServer } from "./_nats.ts";

const frame = encodeChannelFrame;
/** `--cluster-timeout` of the tests that kill an instance or NATS. */
const TIMEOUT_MS = 1500;
/** The others use a long one: a test machine under load never loses a peer by mistake. */
const STEADY_MS = 10_000;

async function channelClient(server: { addr: Deno.Addr }, name: string): Promise<Peer<string>> {
  const peer = await Peer.connect(server.addr, new ChannelDecoder());
  await peer.write(frame(name));
  return peer;
}

/** Three channel instances on one NATS, each hearing the other two. */
async function channelCluster(
  nats: NatsServer,
  timeoutMs = STEADY_MS,
): Promise<ChannelServer[] & AsyncDisposable> {
  const servers = [0, 1, 2].map(() =>
    serveChannel({ port: 0, nats: [nats.url], clusterTimeoutMs: timeoutMs })
  );
  await waitUntil(() => servers.every((s) => s.clusterPeers().length === 2), 5000, "3 peers");
  return Object.assign(servers, {
    [Symbol.asyncDispose]: async () => void await Promise.all(servers.map((s) => s.shutdown())),
  });
}

/** `/list` as `peer` sees it, polled until it equals `expected`. */
async function listIs(peer: Peer<string>, expected: string): Promise<void> {
  let last = "";
  await waitUntil(
    async () => {
      await peer.write(frame("/list"));
      last = await peer.next();
      return last === expected;
    },
    3000,
    `/list to be ${JSON.stringify(expected)} (last ${JSON.stringify(last)})`,
  );
}

Deno.test("cluster: the two-client channel scenario with the clients on different instances", async () => {
  await using nats = await NatsServer.start();
  await using servers = await channelCluster(nats);
  await using alice = await channelClient(servers[0], "Alice");
  await using kay = await channelClient(servers[1], "Kay");
  await alice.write(frame("/create tas"));
  await alice.write(frame("/list"));
  deepStrictEqual(await alice.next(), "tas");
  // Done on Alice's instance, so Kay's sees it: a /join of a channel not known yet syncs first.
  await kay.write(frame("/join tas"));
  deepStrictEqual(await alice.next(), "Kay has joined");
  await kay.write(frame("Hi!"));
  deepStrictEqual(await alice.next(), "[Kay] Hi!");
  await alice.write(frame("Hello!"));
  deepStrictEqual(await kay.next(), "[Alice] Hello!");
  // One sender's chats and notices arrive in order.
  await using bob = await channelClient(servers[2], "Bob");
  await listIs(bob, "tas");
  await bob.write(frame("/join tas"));
  deepStrictEqual(await alice.next(), "Bob has joined");
  deepStrictEqual(await kay.next(), "Bob has joined");
  for (let i = 0; i < 50; i++) await bob.write(frame(`m${i}`));
  deepStrictEqual(await alice.take(50), Array.from({ length: 50 }, (_, i) => `[Bob] m${i}`));
  deepStrictEqual(await kay.take(50), Array.from({ length: 50 }, (_, i) => `[Bob] m${i}`));
  await kay.close();
  deepStrictEqual(await alice.next(), "Kay has left");
  deepStrictEqual(await bob.next(), "Kay has left");
  await listIs(alice, "tas");
});

Deno.test("cluster: /list covers every instance, in creation order", async () => {
  await using nats = await NatsServer.start();
  await using servers = await channelCluster(nats);
  const peers = await Promise.all(servers.map((s, i) => channelClient(s, `u${i}`)));
  try {
    await peers[0].write(frame("/create one"));
    await listIs(peers[2], "one");
    await peers[1].write(frame("/create two"));
    await listIs(peers[2], "one\ntwo");
    await peers[2].write(frame("/create three"));
    await listIs(peers[0], "one\ntwo\nthree");
    // A channel name is taken everywhere.
    await peers[0].write(frame("/create three"));
    deepStrictEqual(await peers[0].next(), "Room three already exists, so cannot be created.");
    // A new instance learns the current state from its peers.
    await using late = serveChannel({ port: 0, nats: [nats.url], clusterTimeoutMs: STEADY_MS });
    await using newcomer = await channelClient(late, "late");
    await listIs(newcomer, "one\ntwo\nthree");
    await newcomer.write(frame("/join one"));
    deepStrictEqual(await peers[0].next(), "late has joined");
  } finally {
    await Promise.all(peers.map((p) => p.close()));
  }
});

Deno.test("cluster: a killed instance (kill -9) loses its members for everyone within the timeout", async () => {
  await using nats = await NatsServer.start();
  await using a = serveChannel({ port: 0, nats: [nats.url], clusterTimeoutMs: TIMEOUT_MS });
  await using b = serveChannel({ port: 0, nats: [nats.url], clusterTimeoutMs: TIMEOUT_MS });
  await using c = EntryProcess.start("servers/channel.ts", [
    "--port",
    "0",
    "--nats",
    nats.url,
    "--cluster-timeout",
    String(TIMEOUT_MS / 1000),
  ], ["--allow-net"]);
  const cPort = await c.listeningPort();
  await waitUntil(() => a.clusterPeers().length === 2 && b.clusterPeers().length === 2, 10000, "C");
  await using alice = await channelClient(a, "Alice");
  await using bob = await channelClient(b, "Bob");
  await using carol = await channelClient({
    addr: { transport: "tcp", hostname: "127.0.0.1", port: cPort },
  }, "Carol");
  await alice.write(frame("/create room"));
  await listIs(carol, "room");
  await carol.write(frame("/join room"));
  deepStrictEqual(await alice.next(), "Carol has joined");
  await listIs(bob, "room");
  await bob.write(frame("/join room"));
  deepStrictEqual(await alice.next(), "Bob has joined");
  deepStrictEqual(await carol.next(), "Bob has joined");
  c.child.kill("SIGKILL");
  const killed = performance.now();
  await c.exited();
  // SIGKILL says no goodbye: the peers notice the silence.
  deepStrictEqual(await alice.next(TIMEOUT_MS + 2000), "Carol has left");
  deepStrictEqual(await bob.next(TIMEOUT_MS + 2000), "Carol has left");
  const took = performance.now() - killed;
  if (took > TIMEOUT_MS + 1000) throw new Error(`the leave notices took ${took} ms`);
  await alice.write(frame("still here"));
  deepStrictEqual(await bob.next(), "[Alice] still here");
});

Deno.test("cluster: instances started before NATS serve their own clients, then join when it is up", async () => {
  await using nats = NatsServer.notYet();
  const options = { port: 0, nats: [nats.url], clusterTimeoutMs: STEADY_MS };
  await using a = serveChannel(options);
  await using b = serveChannel(options);
  await using alice = await channelClient(a, "Alice");
  await using bob = await channelClient(b, "Bob");
  await alice.write(frame("/create here"));
  await alice.write(frame("/list"));
  deepStrictEqual(await alice.next(), "here");
  await bob.write(frame("/list"));
  deepStrictEqual(await bob.next(), "");
  await nats.restart();
  await waitUntil(
    () => a.clusterPeers().length === 1 && b.clusterPeers().length === 1,
    5000,
    "peers",
  );
  await bob.write(frame("/join here"));
  deepStrictEqual(await alice.next(), "Bob has joined");
});

Deno.test("cluster: NATS down, each instance serves its own clients; NATS back, the cluster heals", async () => {
  await using nats = await NatsServer.start();
  await using servers = await channelCluster(nats, TIMEOUT_MS);
  await using alice = await channelClient(servers[0], "Alice");
  await using bob = await channelClient(servers[1], "Bob");
  await alice.write(frame("/create room"));
  await listIs(bob, "room");
  await bob.write(frame("/join room"));
  deepStrictEqual(await alice.next(), "Bob has joined");
  await nats.stop();
  // The other side's members leave, for everyone, as with a killed instance.
  deepStrictEqual(await alice.next(TIMEOUT_MS + 2000), "Bob has left");
  deepStrictEqual(await bob.next(TIMEOUT_MS + 2000), "Alice has left");
  // Meanwhile each instance keeps serving its own clients.
  await using dan = await channelClient(servers[0], "Dan");
  await dan.write(frame("/join room"));
  deepStrictEqual(await alice.next(), "Dan has joined");
  await dan.write(frame("local"));
  deepStrictEqual(await alice.next(), "[Dan] local");
  await nats.restart();
  // Back together: each side's members come back, with join notices.
  deepStrictEqual(await alice.next(5000), "Bob has joined");
  deepStrictEqual(await dan.next(5000), "Bob has joined");
  deepStrictEqual(
    new Set(await bob.take(2, 5000)),
    new Set(["Alice has joined", "Dan has joined"]),
  );
  await waitUntil(() => servers.every((s) => s.clusterPeers().length === 2), 5000, "3 peers");
  await bob.write(frame("across again"));
  deepStrictEqual(await alice.next(), "[Bob] across again");
  deepStrictEqual(await dan.next(), "[Bob] across again");
});

// ---- IM -------------------------------------------------------------------------------------

class ImDecoder implements FrameDecoder<ImServerMessage> {
  #lines = new ImLineDecoder();
  decode(chunk: Uint8Array) {
    return this.#lines.decode(chunk).map((l) => parseImLine(l) as ImServerMessage);
  }
  end() {}
}

type ImClient = Peer<ImServerMessage> & {
  send(m: ImClientMessage): Promise<void>;
  /** The last ONLINE_USERS received. */
  online?: Record<string, string>;
};

const sameUsers = (a: Record<string, string> = {}, b: Record<string, string>) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

async function imClient(server: { addr: Deno.Addr }): Promise<ImClient> {
  const peer = await Peer.connect(server.addr, new ImDecoder()) as ImClient;
  peer.send = (m) => peer.write(encodeIm(m));
  return peer;
}

/** Skips presence updates until ONLINE_USERS lists exactly `users`; anything else fails. */
async function onlineIs(c: ImClient, users: Record<string, string>): Promise<void> {
  while (!sameUsers(c.online, users) || c.frames[0]?.command === "ONLINE_USERS") {
    const m = await c.next(5000);
    if (m.command !== "ONLINE_USERS") {
      throw new Error(`expected presence, got ${JSON.stringify(m)}`);
    }
    c.online = m.users;
  }
}

/** The next message that is not a presence update. */
async function nextNotPresence(c: ImClient, ms = 3000): Promise<ImServerMessage> {
  while (true) {
    const m = await c.next(ms);
    if (m.command !== "ONLINE_USERS") return m;
    c.online = m.users;
  }
}

async function imRegister(server: { addr: Deno.Addr }, name: string): Promise<ImClient> {
  const c = await imClient(server);
  await c.send({ command: "REGISTER", username: name, status: "online" });
  const first = await c.next();
  if (first.command !== "ONLINE_USERS") throw new Error(`${name}: ${JSON.stringify(first)}`);
  c.online = first.users;
  return c;
}

async function imCluster(
  nats: NatsServer,
  count = 3,
  timeoutMs = STEADY_MS,
): Promise<ImServer[] & AsyncDisposable> {
  const servers = Array.from(
    { length: count },
    () =>
      serveIm({ port: 0, presenceIntervalMs: 0, nats: [nats.url], clusterTimeoutMs: timeoutMs }),
  );
  await waitUntil(() => servers.every((s) => s.clusterPeers().length === count - 1), 5000, "peers");
  return Object.assign(servers, {
    [Symbol.asyncDispose]: async () => void await Promise.all(servers.map((s) => s.shutdown())),
  });
}

Deno.test("cluster: ONLINE_USERS, invitations, CONVERSATIONS and messages across IM instances", async () => {
  await using nats = await NatsServer.start();
  await using servers = await imCluster(nats);
  await using alice = await imRegister(servers[0], "alice");
  await using bob = await imRegister(servers[1], "bob");
  await using carol = await imRegister(servers[2], "carol");
  const everyone = { alice: "online", bob: "online", carol: "online" };
  for (const c of [alice, bob, carol]) await onlineIs(c, everyone);
  await bob.send({ command: "STATUS", status: "away" });
  for (const c of [alice, bob, carol]) await onlineIs(c, { ...everyone, bob: "away" });
  await alice.send({ command: "INVITE", users: ["bob", "carol", "nobody"] });
  const invitation = await nextNotPresence(alice);
  deepStrictEqual(invitation.command, "INVITATION");
  const id = (invitation as { conversation: number }).conversation;
  deepStrictEqual(await nextNotPresence(alice), {
    command: "ERROR",
    text: IM_TEXTS.notOnline("nobody"),
  });
  deepStrictEqual(await nextNotPresence(bob), {
    command: "INVITATION",
    conversation: id,
    inviter: "alice",
  });
  deepStrictEqual(await nextNotPresence(carol), {
    command: "INVITATION",
    conversation: id,
    inviter: "alice",
  });
  for (const c of [alice, bob, carol]) await c.send({ command: "JOIN", conversation: id });
  await waitUntil(
    () => servers.every((s) => s.conversations()[id]?.length === 3),
    3000,
    "3 members",
  );
  await carol.send({ command: "LIST_CONVERSATIONS" });
  const listed = await nextNotPresence(carol);
  deepStrictEqual(listed.command, "CONVERSATIONS");
  deepStrictEqual(
    (listed as { conversations: Record<string, string[]> }).conversations[id].sort(),
    ["alice", "bob", "carol"],
  );
  for (let i = 0; i < 20; i++) {
    await bob.send({ command: "SEND_MESSAGE", conversation: id, message: `m${i}` });
  }
  for (const c of [alice, bob, carol]) {
    for (let i = 0; i < 20; i++) {
      deepStrictEqual(await nextNotPresence(c), {
        command: "MESSAGE",
        conversation: id,
        sender: "bob",
        message: `m${i}`,
      });
    }
  }
  // A second conversation made elsewhere gets another id.
  await carol.send({ command: "INVITE", users: ["alice"] });
  const second = await nextNotPresence(carol) as { conversation: number };
  deepStrictEqual(second.conversation !== id, true);
  deepStrictEqual(await nextNotPresence(alice), {
    command: "INVITATION",
    conversation: second.conversation,
    inviter: "carol",
  });
  await bob.close();
  for (const c of [alice, carol]) await onlineIs(c, { alice: "online", carol: "online" });
});

Deno.test("cluster: an IM name taken on another instance is refused; free again when its user leaves", async () => {
  await using nats = await NatsServer.start();
  await using servers = await imCluster(nats);
  await using alice = await imRegister(servers[0], "alice");
  await using dup = await imClient(servers[1]);
  await waitUntil(() => "alice" in servers[1].onlineUsers(), 3000, "alice to be known");
  await dup.send({ command: "REGISTER", username: "alice", status: "x" });
  deepStrictEqual(await dup.next(), { command: "ERROR", text: IM_TEXTS.nameTaken("alice") });
  // Two instances racing for one new name: exactly one wins.
  await using r1 = await imClient(servers[1]);
  await using r2 = await imClient(servers[2]);
  await Promise.all(
    [r1, r2].map((r) => r.send({ command: "REGISTER", username: "zed", status: "s" })),
  );
  const answers = [await r1.next(), await r2.next()].map((m) => m.command).sort();
  deepStrictEqual(answers, ["ERROR", "ONLINE_USERS"]);
  await alice.close();
  await waitUntil(() => !("alice" in servers[1].onlineUsers()), 3000, "alice to leave");
  await dup.send({ command: "REGISTER", username: "alice", status: "x" });
  deepStrictEqual((await dup.next()).command, "ONLINE_USERS");
});

Deno.test("cluster: IM instances apart while NATS is down, whole again when it is back", async () => {
  await using nats = await NatsServer.start();
  await using servers = await imCluster(nats, 2, TIMEOUT_MS);
  await using alice = await imRegister(servers[0], "alice");
  await using bob = await imRegister(servers[1], "bob");
  const both = { alice: "online", bob: "online" };
  for (const c of [alice, bob]) await onlineIs(c, both);
  await alice.send({ command: "INVITE", users: ["bob"] });
  const { conversation: id } = await nextNotPresence(alice) as { conversation: number };
  await nextNotPresence(bob);
  for (const c of [alice, bob]) await c.send({ command: "JOIN", conversation: id });
  await waitUntil(() => servers.every((s) => s.conversations()[id]?.length === 2), 3000, "members");
  await nats.stop();
  await onlineIs(alice, { alice: "online" });
  await onlineIs(bob, { bob: "online" });
  deepStrictEqual(servers[0].conversations(), { [id]: ["alice"] });
  // Each side gives the name carol away: the earlier registration keeps it after the healing.
  await using carolA = await imRegister(servers[0], "carol");
  await onlineIs(alice, { alice: "online", carol: "online" });
  await using carolB = await imRegister(servers[1], "carol");
  await onlineIs(bob, { bob: "online", carol: "online" });
  await nats.restart();
  const all = { alice: "online", bob: "online", carol: "online" };
  await onlineIs(alice, all);
  await onlineIs(bob, all);
  deepStrictEqual(await nextNotPresence(carolB, 5000), {
    command: "ERROR",
    text: IM_TEXTS.nameTaken("carol"),
  });
  await carolB.closedByServer();
  await waitUntil(() => servers.every((s) => s.conversations()[id]?.length === 2), 5000, "healed");
  await bob.send({ command: "SEND_MESSAGE", conversation: id, message: "back" });
  const back = { command: "MESSAGE", conversation: id, sender: "bob", message: "back" };
  deepStrictEqual(await nextNotPresence(alice), back);
  deepStrictEqual(await nextNotPresence(bob), back);
  deepStrictEqual(servers[1].onlineUsers(), all);
  await carolA.send({ command: "LIST_CONVERSATIONS" });
  deepStrictEqual(await nextNotPresence(carolA), {
    command: "CONVERSATIONS",
    conversations: { [id]: ["alice", "bob"] },
  });
});

Deno.test("servers/channel.ts and servers/im.ts refuse a --nats value that is no URL (exit 2)", async () => {
  for (const script of ["servers/channel.ts", "servers/im.ts"]) {
    await using p = EntryProcess.start(script, ["--port", "0", "--nats", "nowhere"], [
      "--allow-net",
    ]);
    deepStrictEqual((await p.exited()).code, 2);
  }
});

Deno.test("Cluster: a snapshot bigger than one NATS message arrives whole, in parts", async () => {
  await using nats = await NatsServer.start();
  const got = new Map<string, string>();
  const make = (big: string) =>
    new Cluster<never, { big: string }>({
      servers: [nats.url],
      prefix: "parley.test",
      timeoutMs: STEADY_MS,
      logger: getLogger(["parley", "test"]),
      snapshot: () => ({ big }),
      onEvent: () => {},
      onSnapshot: (peer, snapshot) => void got.set(peer, snapshot.big),
      onPeerLost: () => {},
    });
  const a = make("é".repeat(700_000)); // 1.4 MB of UTF-8: over NATS's 1 MB default payload
  const b = make("small");
  try {
    await waitUntil(() => got.has(a.id) && got.has(b.id), 5000, "both snapshots");
    deepStrictEqual(got.get(a.id), "é".repeat(700_000));
    deepStrictEqual(got.get(b.id), "small");
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("cluster: a killed IM instance (kill -9) loses its users: ONLINE_USERS and CONVERSATIONS elsewhere", async () => {
  await using nats = await NatsServer.start();
  await using a = serveIm({
    port: 0,
    presenceIntervalMs: 0,
    nats: [nats.url],
    clusterTimeoutMs: TIMEOUT_MS,
  });
  await using b = EntryProcess.start("servers/im.ts", [
    "--port",
    "0",
    "--presence-interval",
    "0",
    "--nats",
    nats.url,
    "--cluster-timeout",
    String(TIMEOUT_MS / 1000),
  ], ["--allow-net"]);
  const bAddr: Deno.NetAddr = {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: await b.listeningPort(),
  };
  await waitUntil(() => a.clusterPeers().length === 1, 10000, "the other instance");
  await using alice = await imRegister(a, "alice");
  await using bob = await imRegister({ addr: bAddr }, "bob");
  await onlineIs(alice, { alice: "online", bob: "online" });
  await bob.send({ command: "INVITE", users: ["alice"] });
  const { conversation: id } = await nextNotPresence(alice) as { conversation: number };
  await alice.send({ command: "JOIN", conversation: id });
  await bob.send({ command: "JOIN", conversation: id });
  await waitUntil(() => a.conversations()[id]?.length === 2, 3000, "both members");
  b.child.kill("SIGKILL");
  await b.exited();
  await onlineIs(alice, { alice: "online" });
  deepStrictEqual(a.conversations(), { [id]: ["alice"] });
});
