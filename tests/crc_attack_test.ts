// Attacks on real CRC node processes (SPEC 6.2, 6.4, 6.6, 6.7, issue 12): each outcome as SPEC says.
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { CRC_STATUS, CrcDecoder, type CrcMessage, encodeCrc } from "../protocols/crc.ts";
import { CrcClient } from "../clients/crc.ts";
import type { CrcNodeState } from "../servers/crc_node.ts";
import { EntryProcess, Peer, waitUntil, within } from "./_helpers.ts";
import { concatBytes } from "../net/bytes.ts";

/** A node process with its listening and admin ports. */
interface NodeProcess {
  process: EntryProcess;
  port: number;
  admin: number;
  state(): Promise<CrcNodeState>;
  metric(name: string): Promise<number>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startNode(
  id: number,
  args: string[] = [],
  join?: NodeProcess,
): Promise<NodeProcess> {
  const joinArgs = join
    ? ["--connect-to-host", "127.0.0.1", "--connect-to-port", String(join.port)]
    : [];
  const process = EntryProcess.start(
    "servers/crc_node.ts",
    ["--id", String(id), "--port", "0", "--admin", "127.0.0.1:0", ...joinArgs, ...args],
    ["--allow-net"],
  );
  const port = await process.listeningPort();
  const admin = Number((await process.waitFor(/Admin endpoint on [\d.]+:(\d+)/))[1]);
  const get = async (path: string) =>
    await (await fetch(`http://127.0.0.1:${admin}${path}`)).text();
  if (join) {
    await waitUntil(
      async () => JSON.parse(await get("/state")).adjacentServers.length > 0,
      5000,
      "the join",
    );
  }
  return {
    process,
    port,
    admin,
    state: async () => JSON.parse(await get("/state")),
    metric: async (name: string) => {
      const m = new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\d+)$`, "m").exec(
        await get("/metrics"),
      );
      return m ? Number(m[1]) : NaN;
    },
    [Symbol.asyncDispose]: async () => {
      deepStrictEqual((await process.stop()).code, 0, "the node stops cleanly");
    },
  };
}

const connectRaw = (port: number) =>
  Peer.connect<CrcMessage>({ transport: "tcp", hostname: "127.0.0.1", port }, new CrcDecoder());
const client = (port: number, id: number, username: string) =>
  CrcClient.connect({ id, username, port });
const chat = (source: number, destination: number, content = "hi"): Uint8Array =>
  encodeCrc({ kind: "chat", source, destination, content });

/** Registers a raw peer as a brand-new server neighbour and takes its state dump (`known` frames). */
async function rawServer(port: number, id: number, known: number): Promise<Peer<CrcMessage>> {
  const peer = await connectRaw(port);
  await peer.write(
    encodeCrc({ kind: "server_registration", source: id, lastHop: 0, name: `raw${id}`, info: "" }),
  );
  await peer.take(1 + known);
  return peer;
}

Deno.test("crc_node attack: a registration whose name is 255 bytes of 0xFF closes only that link; the node keeps welcoming clients", async () => {
  await using hub = await startNode(1);
  await using alice = await client(hub.port, 101, "alice");
  await waitUntil(() => alice.statusLog.length === 1, 3000, "alice's welcome");
  const bad = encodeCrc({
    kind: "client_registration",
    source: 666,
    lastHop: 0,
    name: "",
    info: "",
  });
  const frame = new Uint8Array(bad.length + 255);
  frame.set(bad);
  frame[9] = 255;
  frame.fill(0xff, 12);
  {
    await using attacker = await connectRaw(hub.port);
    await attacker.write(frame);
    await attacker.closedByServer();
  }
  // Twelve NUL bytes: a server registration from id 0, refused like a duplicate.
  {
    await using zero = await connectRaw(hub.port);
    await zero.write(new Uint8Array(12));
    deepStrictEqual(await zero.next(), {
      kind: "status",
      source: 1,
      destination: 0,
      code: CRC_STATUS.duplicateId,
      content: "A machine has already registered with ID 0",
    });
  }
  await using bob = await client(hub.port, 102, "bob");
  await waitUntil(() => bob.users.has(101), 3000, "bob to be welcomed and told of alice");
  await alice.chat(102, "still here?");
  await waitUntil(() => bob.chatLog.length === 1, 3000, "a chat to bob: he stayed connected");
  await using leaf = await startNode(2, [], hub);
  await waitUntil(
    async () => (await leaf.state()).hosts.map((h) => h.id).sort().join() === "1,101,102",
    3000,
    "the joining server to learn every host",
  );
  deepStrictEqual((await hub.state()).hosts.map((h) => h.id), [101, 102, 2]);
  deepStrictEqual(await hub.metric("parley_crc_protocol_errors_total"), 1);
});

Deno.test("crc_node attack: a 64 KiB-chat flood between two nodes delivers every chat and drops no link", async () => {
  await using east = await startNode(1);
  await using west = await startNode(2, [], east);
  await using reader = await connectRaw(west.port);
  await reader.write(
    encodeCrc({ kind: "client_registration", source: 202, lastHop: 0, name: "y", info: "" }),
  );
  await reader.next(); // welcome
  await using flooder = await connectRaw(east.port);
  await flooder.write(
    encodeCrc({ kind: "client_registration", source: 101, lastHop: 0, name: "x", info: "" }),
  );
  await flooder.take(2); // welcome, y
  await waitUntil(() => reader.frames.length === 1, 3000, "y to learn of x");
  reader.frames.length = 0;
  const COUNT = 320; // 20 MiB: twenty times the send queue that used to overflow
  const content = "z".repeat(64 * 1024);
  const one = chat(101, 202, content);
  const all = new Uint8Array(one.length * COUNT);
  for (let i = 0; i < COUNT; i++) all.set(one, i * one.length);
  // West stops reading for a moment (stopped, as a busy machine would be), so east's link backs up.
  west.process.child.kill("SIGSTOP");
  let writing: Promise<void>;
  try {
    writing = flooder.write(all);
    await waitUntil(
      async () =>
        east.process.output.includes("Dropping") ||
        (await east.metric("parley_crc_client_reads_paused")) === 1,
      10000,
      "east's link to west to back up",
    );
  } finally {
    west.process.child.kill("SIGCONT");
  }
  await reader.waitFor(() => reader.frames.length >= COUNT || reader.ended, 30000, "every chat");
  await writing;
  deepStrictEqual(reader.frames.length, COUNT, `${east.process.output}\n${west.process.output}`);
  ok(reader.frames.every((m) => m.kind === "chat" && m.source === 101 && m.content === content));
  deepStrictEqual((await east.state()).adjacentServers, [2]);
  deepStrictEqual((await west.state()).adjacentServers, [1]);
  ok(!east.process.output.includes("Link lost") && !west.process.output.includes("Link lost"));
});

Deno.test("crc_node attack: spoofed chats, quits and registrations are dropped and counted; nobody's state changes", async () => {
  await using hub = await startNode(1);
  await using leaf = await startNode(2, [], hub);
  await using alice = await client(hub.port, 101, "alice");
  await using bob = await client(leaf.port, 202, "bob");
  await waitUntil(() => alice.users.has(202) && bob.users.has(101), 3000, "alice and bob");
  await using attacker = await rawServer(hub.port, 66, 3);
  const before = [await hub.state(), await leaf.state()];
  const spoofs = [
    chat(101, 202, "I am alice"),
    encodeCrc({ kind: "client_quit", source: 101, content: "alice quits" }),
    encodeCrc({ kind: "client_quit", source: 202, content: "bob quits" }),
    encodeCrc({ kind: "server_quit", source: 2, replacement: 0, content: "leaf is gone" }),
    encodeCrc({ kind: "client_registration", source: 202, lastHop: 66, name: "bob2", info: "" }),
  ];
  for (const bytes of spoofs) await attacker.write(bytes);
  await attacker.write(chat(999, 4_000_000_001));
  deepStrictEqual((await attacker.next()).kind, "status", "everything before was handled");
  deepStrictEqual(await hub.metric("parley_crc_spoofed_frames_total"), spoofs.length);
  const hubAfter = await hub.state();
  deepStrictEqual(
    hubAfter.hosts.filter((h) => h.id !== 66),
    before[0].hosts.filter((h) => h.id !== 66),
  );
  deepStrictEqual(hubAfter.adjacentServers, before[0].adjacentServers);
  deepStrictEqual(await leaf.state(), before[1]);
  ok(alice.users.has(202) && bob.users.has(101));
  deepStrictEqual(bob.chatLog, []);
  // A client link that speaks for someone else is closed, and its own quit announced.
  await using carol = await client(hub.port, 303, "carol");
  await waitUntil(() => bob.users.has(303), 3000, "bob to learn of carol");
  await carol.chat(101, "fine"); // her own source: delivered
  await waitUntil(() => alice.chatLog.length === 1, 3000, "carol's own chat");
  await using forger = await connectRaw(hub.port);
  await forger.write(
    encodeCrc({ kind: "client_registration", source: 404, lastHop: 0, name: "f", info: "" }),
  );
  await forger.take(4); // welcome, alice, bob, carol
  await forger.write(chat(101, 202, "I am alice too"));
  await forger.closedByServer();
  await waitUntil(() => !bob.users.has(404) && !alice.users.has(404), 3000, "the forger's quit");
  deepStrictEqual(bob.chatLog, []);
});

Deno.test("crc_node attack: registrations forwarded over a link that never registered leave no ghost hosts", async () => {
  await using hub = await startNode(1);
  await using alice = await client(hub.port, 101, "alice");
  await waitUntil(() => alice.statusLog.length === 1, 3000, "alice's welcome");
  for (
    const ghost of [
      encodeCrc({ kind: "client_registration", source: 700, lastHop: 5, name: "ghost", info: "" }),
      encodeCrc({ kind: "server_registration", source: 701, lastHop: 5, name: "ghost", info: "" }),
    ]
  ) {
    await using raw = await connectRaw(hub.port);
    await raw.write(ghost);
    await raw.closedByServer();
  }
  await alice.chat(700, "anyone?");
  await waitUntil(() => alice.statusLog.length === 2, 3000, "the Unknown ID answer");
  deepStrictEqual(alice.statusLog[1].text, "Unknown ID 700");
  deepStrictEqual((await hub.state()).hosts.map((h) => h.id), [101]);
  deepStrictEqual([...alice.users.keys()], []);
});

Deno.test("crc_node attack: 20,000 registrations over one server link are absorbed; a new client is still welcomed; SIGTERM stops it", async () => {
  await using hub = await startNode(1);
  await using attacker = await rawServer(hub.port, 66, 0);
  const COUNT = 20_000;
  const frames = [];
  for (let i = 0; i < COUNT; i++) {
    frames.push(
      encodeCrc({
        kind: "client_registration",
        source: 10_000 + i,
        lastHop: 66,
        name: `f${i}`,
        info: "",
      }),
    );
  }
  const all = concatBytes(frames);
  const writing = attacker.write(all);
  await using alice = await client(hub.port, 101, "alice");
  await waitUntil(() => alice.statusLog.length === 1, 10000, "alice's welcome");
  await writing;
  await waitUntil(
    async () => (await hub.metric('parley_crc_hosts{kind="client"}')) === COUNT + 1,
    20000,
    "every registration",
  );
  deepStrictEqual((await hub.process.stop()).code, 0);
});

Deno.test("crc_node: --max-hosts refuses registrations past the cap", async () => {
  await using hub = await startNode(1, ["--max-hosts", "2"]);
  await using a = await client(hub.port, 101, "a");
  await using _b = await client(hub.port, 102, "b");
  await waitUntil(() => a.users.has(102), 3000, "a and b");
  await using c = await connectRaw(hub.port);
  await c.write(
    encodeCrc({ kind: "client_registration", source: 103, lastHop: 0, name: "c", info: "" }),
  );
  deepStrictEqual(await c.next(), {
    kind: "status",
    source: 1,
    destination: 0,
    code: CRC_STATUS.duplicateId,
    content: "This network already has 2 hosts",
  });
  deepStrictEqual(await hub.metric("parley_crc_hosts_refused_total"), 1);
});

Deno.test("crc_node: a server link whose peer stops reading is dropped after --link-stall-timeout; the paused client is read again", async () => {
  // The flooder is paused longer than --frame-timeout: the pause is the node's, not a slow frame.
  await using hub = await startNode(1, [
    "--link-high-water",
    "65536",
    "--link-stall-timeout",
    "1",
    "--frame-timeout",
    "0.3",
  ]);
  // A server neighbour that registers one client behind it and then never reads.
  const sleeper = await Deno.connect({ hostname: "127.0.0.1", port: hub.port });
  try {
    await sleeper.write(
      encodeCrc({ kind: "server_registration", source: 66, lastHop: 0, name: "z", info: "" }),
    );
    await sleeper.write(
      encodeCrc({ kind: "client_registration", source: 500, lastHop: 66, name: "z", info: "" }),
    );
    await using flooder = await connectRaw(hub.port);
    await flooder.write(
      encodeCrc({ kind: "client_registration", source: 101, lastHop: 0, name: "x", info: "" }),
    );
    await flooder.take(2); // welcome, z
    const one = chat(101, 500, "y".repeat(64 * 1024));
    const ROUNDS = 400; // 26 MB: more than the loopback buffers hold
    const all = new Uint8Array(one.length * ROUNDS);
    for (let i = 0; i < ROUNDS; i++) all.set(one, i * one.length);
    const writing = flooder.write(all);
    await flooder.waitFor(
      () => flooder.frames.some((m) => m.kind === "client_quit" && m.source === 500),
      20000,
      "the quit of the host behind the stalled link",
    );
    await within(writing, 20000, "the node to read the flooder again");
    match(hub.process.output, /no progress for 1 s/);
    deepStrictEqual((await hub.state()).adjacentServers, []);
  } finally {
    sleeper.close();
  }
});
