/**
 * SPEC.md 8.2: channel and IM servers as one cluster over a real nats-server.
 *
 * @module
 */

import { deepStrictEqual } from "node:assert/strict";
import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { type ChannelServer, serveChannel } from "../servers/channel.ts";
import { EntryProcess, Peer, waitUntil } from "./_helpers.ts";
import { NatsServer } from "./_nats.ts";

const frame = encodeChannelFrame;
const TIMEOUT_MS = 1000;

async function channelClient(server: { addr: Deno.Addr }, name: string): Promise<Peer<string>> {
  const peer = await Peer.connect(server.addr, new ChannelDecoder());
  await peer.write(frame(name));
  return peer;
}

/** Three channel instances on one NATS, each hearing the other two. */
async function channelCluster(nats: NatsServer): Promise<ChannelServer[] & AsyncDisposable> {
  const servers = [0, 1, 2].map(() =>
    serveChannel({ port: 0, nats: [nats.url], clusterTimeoutMs: TIMEOUT_MS })
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
  await listIs(kay, "tas");
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
    await using late = serveChannel({ port: 0, nats: [nats.url], clusterTimeoutMs: TIMEOUT_MS });
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
  if (took > TIMEOUT_MS * 1.5) throw new Error(`the leave notices took ${took} ms`);
  await alice.write(frame("still here"));
  deepStrictEqual(await bob.next(), "[Alice] still here");
});

Deno.test("cluster: NATS down, each instance serves its own clients; NATS back, the cluster heals", async () => {
  await using nats = await NatsServer.start();
  await using servers = await channelCluster(nats);
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
