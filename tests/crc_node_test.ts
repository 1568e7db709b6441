import { deepStrictEqual, match, ok } from "node:assert/strict";
import { CrcDecoder, type CrcMessage, encodeCrc } from "../protocols/crc.ts";
import { serveCrcNode } from "../servers/crc_node.ts";
import { CrcClient } from "../clients/crc.ts";
import { ListenError } from "../net/listen.ts";
import { EntryProcess, Peer, portOf, waitUntil, within } from "./_helpers.ts";
import { concatBytes } from "../net/bytes.ts";

const port = (s: { addr: Deno.Addr }) => portOf(s.addr);

Deno.test("serveCrcNode() sends a brand-new neighbour its own registration, then every known host, in order", async () => {
  await using hub = await serveCrcNode({ id: 1, name: "hub", info: "the hub", port: 0 });
  await using alice = await CrcClient.connect({
    id: 101,
    username: "alice",
    info: "a",
    port: port(hub),
  });
  await waitUntil(() => hub.state().hosts.length === 1, 2000, "alice registered");
  await using leaf = await serveCrcNode({
    id: 2,
    name: "leaf",
    port: 0,
    connectTo: { hostname: "127.0.0.1", port: port(hub) },
  });
  await waitUntil(() => hub.state().hosts.length === 2, 2000, "leaf registered");
  // A raw server joins and checks the exact dump it is sent.
  await using raw = await Peer.connect<CrcMessage>(hub.addr, new CrcDecoder());
  await raw.write(
    encodeCrc({ kind: "server_registration", source: 3, lastHop: 0, name: "raw", info: "" }),
  );
  deepStrictEqual(await raw.take(3), [
    { kind: "server_registration", source: 1, lastHop: 1, name: "hub", info: "the hub" },
    { kind: "client_registration", source: 101, lastHop: 1, name: "alice", info: "a" },
    { kind: "server_registration", source: 2, lastHop: 1, name: "leaf", info: "" },
  ]);
  await waitUntil(() => leaf.state().hosts.some((h) => h.id === 3), 2000, "leaf to learn of raw");
  deepStrictEqual(leaf.state().hosts.find((h) => h.id === 3), {
    id: 3,
    kind: "server",
    name: "raw",
    info: "",
    firstLink: 1,
  });
  // alice is told about clients only, never servers.
  deepStrictEqual([...alice.users.keys()], []);
});

Deno.test("serveCrcNode(): garbage, an oversized length or a truncated frame closes that link only; routing goes on", async () => {
  await using hub = await serveCrcNode({ id: 1, port: 0 });
  await using a = await CrcClient.connect({ id: 101, username: "a", port: port(hub) });
  await using b = await CrcClient.connect({ id: 102, username: "b", port: port(hub) });
  await waitUntil(() => a.users.has(102), 2000, "a to know b");
  const oversized = encodeCrc({ kind: "chat", source: 5, destination: 101, content: "" });
  new DataView(oversized.buffer).setUint32(9, 1 << 30);
  for (const bad of [new Uint8Array([0x55, 1, 2, 3]), oversized]) {
    await using peer = await Peer.connect<CrcMessage>(hub.addr, new CrcDecoder());
    await peer.write(bad);
    await peer.closedByServer();
  }
  const truncated = await Deno.connect({ hostname: "127.0.0.1", port: port(hub) });
  await truncated.write(
    encodeCrc({ kind: "client_registration", source: 103, lastHop: 0, name: "c", info: "" })
      .subarray(0, 7),
  );
  truncated.close();
  await a.chat(102, "still routed");
  await waitUntil(() => b.chatLog.length === 1, 2000, "the chat");
  deepStrictEqual(b.chatLog, [{ source: 101, sender: "a", text: "still routed" }]);
  // Three framing errors: garbage, an oversized length, and a stream that ended inside a frame.
  await waitUntil(
    () => /parley_crc_protocol_errors_total 3\n/.test(hub.metrics()),
    2000,
    "three protocol errors",
  );
  deepStrictEqual(hub.state().hosts.map((h) => h.id), [101, 102]);
});

Deno.test("serveCrcNode(): a client quit for an unknown id is ignored; a client that drops is announced", async () => {
  await using hub = await serveCrcNode({ id: 1, port: 0 });
  await using a = await CrcClient.connect({ id: 101, username: "a", port: port(hub) });
  const b = await CrcClient.connect({ id: 102, username: "b", port: port(hub) });
  await waitUntil(() => a.users.has(102), 2000, "a to know b");
  await using raw = await Peer.connect<CrcMessage>(hub.addr, new CrcDecoder());
  await raw.write(encodeCrc({ kind: "client_quit", source: 999, content: "" }));
  await b[Symbol.asyncDispose](); // dropped without a quit
  await waitUntil(() => !a.users.has(102), 2000, "b's departure");
  deepStrictEqual(hub.state().hosts.map((h) => h.id), [101]);
});

Deno.test("servers/crc_node.ts serves GET /state and GET /metrics on --admin, and exits clearly when it cannot join", async () => {
  await using node = EntryProcess.start(
    "servers/crc_node.ts",
    [
      "--id",
      "42",
      "--servername",
      "answer",
      "--info",
      "life",
      "--port",
      "0",
      "--admin",
      "127.0.0.1:0",
    ],
    ["--allow-net"],
  );
  const nodePort = await node.listeningPort();
  const admin = Number((await node.waitFor(/Admin endpoint on [\d.]+:(\d+)/))[1]);
  await using alice = await CrcClient.connect({ id: 7, username: "alice", port: nodePort });
  await waitUntil(() => alice.statusLog.length === 1, 2000, "welcome");
  const state = await (await fetch(`http://127.0.0.1:${admin}/state`)).json();
  deepStrictEqual(state, {
    id: 42,
    name: "answer",
    info: "life",
    hosts: [{ id: 7, kind: "client", name: "alice", info: "", firstLink: 7 }],
    adjacentServers: [],
    adjacentClients: [7],
    statusLog: [],
  });
  const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  match(metrics, /parley_crc_frames_in_total\{type="client_registration"\} 1\n/);
  match(metrics, /parley_crc_frames_out_total\{type="status"\} 1\n/);
  match(metrics, /parley_crc_connections 1\n/);
  const missing = await fetch(`http://127.0.0.1:${admin}/nope`);
  deepStrictEqual(missing.status, 404);
  await missing.body?.cancel();

  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = portOf(listener.addr);
  listener.close();
  await using orphan = EntryProcess.start(
    "servers/crc_node.ts",
    ["--port", "0", "--connect-to-host", "127.0.0.1", "--connect-to-port", String(closedPort)],
    ["--allow-net"],
  );
  deepStrictEqual((await orphan.exited()).code, 1);
  match(orphan.output, new RegExp(`Cannot join the network at 127\\.0\\.0\\.1:${closedPort}`));
  ok(!orphan.output.includes("    at "), "no stack trace");
});

Deno.test("clients/crc.ts as a process: registers, shows welcome and chats by name, /who, /quit", async () => {
  await using hub = await serveCrcNode({ id: 1, port: 0 });
  await using bob = await CrcClient.connect({ id: 202, username: "bob", port: port(hub) });
  await using alice = EntryProcess.start(
    "clients/crc.ts",
    [
      "--id",
      "201",
      "--serverhost",
      "127.0.0.1",
      "--serverport",
      String(port(hub)),
      "--username",
      "alice",
      "--info",
      "hi",
    ],
    ["--allow-net"],
    { stdin: true },
  );
  await alice.waitFor(/\* Welcome to the Clemson Relay Chat network alice\n/);
  await alice.waitFor(/\* bob \(202\) is online\n/);
  await alice.type("/msg bob hello bob\n");
  await waitUntil(() => bob.chatLog.length === 1, 3000, "bob's chat");
  deepStrictEqual(bob.chatLog[0], { source: 201, sender: "alice", text: "hello bob" });
  await bob.chat(201, "hi alice");
  await alice.waitFor(/\[bob\] hi alice\n/);
  await alice.type("MESSAGE 202 by id\n");
  await waitUntil(() => bob.chatLog.length === 2, 3000, "the second chat");
  await alice.type("/who\n");
  await alice.waitFor(/bob \(202\)\n/);
  await alice.type("/quit see you\n");
  deepStrictEqual((await alice.exited()).code, 0);
  await waitUntil(() => !bob.users.has(201), 3000, "alice's quit");
});

Deno.test("servers/crc_node.ts --log-file (the seed's flag) appends the log to a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using node = EntryProcess.start(
      "servers/crc_node.ts",
      ["--id", "9", "--servername", "logged", "--port", "0", "--log-file", `${dir}/node.log`],
      ["--allow-net", `--allow-write=${dir}`],
    );
    await node.listeningPort();
    deepStrictEqual((await node.stop()).code, 0);
    match(
      await Deno.readTextFile(`${dir}/node.log`),
      /Listening on 127\.0\.0\.1:\d+ as node 9 \(logged\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("serveCrcNode(): an admin port in use fails with one line naming it, and the node's own port is released", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const nodePort = portOf(probe.addr);
  probe.close();
  const error = await serveCrcNode({
    id: 1,
    port: nodePort,
    admin: { hostname: "127.0.0.1", port: portOf(busy.addr) },
  }).then(() => undefined, (e) => e);
  // Nothing opened before the failure leaks: the node's port can be taken again at once.
  Deno.listen({ hostname: "127.0.0.1", port: nodePort }).close();
  ok(error instanceof ListenError, String(error));
  match(error.message, new RegExp(`^127\\.0\\.0\\.1:${portOf(busy.addr)} is already in use$`));
});

Deno.test("servers/crc_node.ts: an admin port in use exits 1 with one line", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using node = EntryProcess.start(
    "servers/crc_node.ts",
    ["--port", "0", "--admin", `127.0.0.1:${portOf(busy.addr)}`],
    ["--allow-net"],
  );
  deepStrictEqual((await node.exited()).code, 1);
  match(node.output, new RegExp(`127\\.0\\.0\\.1:${portOf(busy.addr)} is already in use\\n`));
  ok(!node.output.includes("    at "), "no stack trace");
});

Deno.test("serveCrcNode(): the admin endpoint serves at most 8 connections at once and closes idle ones", async () => {
  await using node = await serveCrcNode({
    id: 1,
    port: 0,
    admin: { hostname: "127.0.0.1", port: 0 },
    adminIdleMs: 300,
  });
  const admin = node.adminAddr!.port;
  const idle = await Promise.all(
    Array.from({ length: 8 }, () => Deno.connect({ hostname: "127.0.0.1", port: admin })),
  );
  try {
    // The ninth is answered 503 and closed.
    const ninth = await Deno.connect({ hostname: "127.0.0.1", port: admin });
    await ninth.write(new TextEncoder().encode("GET /state HTTP/1.1\r\nHost: x\r\n\r\n"));
    const answer = new TextDecoder().decode(await readAll(ninth));
    ninth.close();
    match(answer, /^HTTP\/1\.1 503 /);
    // The eight idle ones are closed by the node.
    for (const conn of idle) deepStrictEqual((await readAll(conn)).length, 0);
  } finally {
    for (const conn of idle) conn.close();
  }
  const state = await fetch(`http://127.0.0.1:${admin}/state`);
  deepStrictEqual(state.status, 200);
  deepStrictEqual((await state.json()).id, 1);
});

async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  while (true) {
    const n = await within(conn.read(buffer), 3000, "the admin endpoint to answer or close");
    if (n === null) break;
    parts.push(buffer.slice(0, n));
  }
  return concatBytes(parts);
}

Deno.test("servers/crc_node.ts: --register-timeout closes a silent link; --frame-timeout a half-sent frame (and its client's quit is announced)", async () => {
  await using node = EntryProcess.start(
    "servers/crc_node.ts",
    ["--id", "1", "--port", "0", "--register-timeout", "0.3", "--frame-timeout", "0.3"],
    ["--allow-net"],
  );
  const nodePort = await node.listeningPort();
  const addr = { transport: "tcp" as const, hostname: "127.0.0.1", port: nodePort };
  await using alice = await CrcClient.connect({ id: 101, username: "alice", port: nodePort });
  await using silent = await Peer.connect<CrcMessage>(addr, new CrcDecoder());
  await using slow = await Peer.connect<CrcMessage>(addr, new CrcDecoder());
  await slow.write(
    encodeCrc({ kind: "client_registration", source: 102, lastHop: 0, name: "slow", info: "" }),
  );
  await waitUntil(() => alice.users.has(102), 3000, "alice to learn of slow");
  await slow.write(
    encodeCrc({ kind: "chat", source: 102, destination: 101, content: "half" })
      .subarray(0, 10),
  );
  await silent.closedByServer();
  await slow.closedByServer();
  await waitUntil(() => !alice.users.has(102), 3000, "slow's quit");
  // alice registered in time and chats are whole: she stays.
  deepStrictEqual(alice.statusLog.length, 1);
  match(node.output, /not registered within 300 ms/);
  match(node.output, /a frame took longer than 300 ms/);
});

Deno.test("servers/crc_node.ts: a node whose id is refused by the node it joins exits 1 with the refusal text", async () => {
  await using hub = await serveCrcNode({ id: 5, port: 0 });
  await using twin = EntryProcess.start(
    "servers/crc_node.ts",
    [
      "--id",
      "5",
      "--port",
      "0",
      "--connect-to-host",
      "127.0.0.1",
      "--connect-to-port",
      String(port(hub)),
    ],
    ["--allow-net"],
  );
  deepStrictEqual((await twin.exited()).code, 1);
  match(twin.output, /A machine has already registered with ID 5\n/);
  ok(!twin.output.includes("    at "), "no stack trace");
  deepStrictEqual(hub.state().hosts, []);
});

Deno.test("servers/crc_node.ts: a --name with a control character is a usage error", async () => {
  await using node = EntryProcess.start(
    "servers/crc_node.ts",
    ["--port", "0", "--name", "evil\u001b[2J"],
    ["--allow-net"],
  );
  deepStrictEqual((await node.exited()).code, 2);
  match(node.output, /--name contains a control character/);
});

Deno.test("serveCrcNode(): GET /state?from=N&limit=M pages the hosts", async () => {
  await using node = await serveCrcNode({
    id: 1,
    port: 0,
    admin: { hostname: "127.0.0.1", port: 0 },
  });
  await using a = await CrcClient.connect({ id: 101, username: "a", port: port(node) });
  await using b = await CrcClient.connect({ id: 102, username: "b", port: port(node) });
  await using _c = await CrcClient.connect({ id: 103, username: "c", port: port(node) });
  await waitUntil(() => a.users.size === 2 && b.users.size === 2, 3000, "three clients");
  const get = async (query: string) =>
    await (await fetch(`http://127.0.0.1:${node.adminAddr!.port}/state${query}`)).json();
  deepStrictEqual((await get("?from=1&limit=1")).hosts.map((h: { id: number }) => h.id), [102]);
  deepStrictEqual((await get("?from=2")).hosts.map((h: { id: number }) => h.id), [103]);
  deepStrictEqual((await get("")).hosts.length, 3);
  const bad = await fetch(`http://127.0.0.1:${node.adminAddr!.port}/state?from=-1`);
  deepStrictEqual(bad.status, 400);
  await bad.body?.cancel();
});

Deno.test("serveCrcNode(): a new client's list of every known client may exceed its queue limit: it is owed", async () => {
  await using hub = await serveCrcNode({ id: 1, port: 0, maxQueueBytes: 2048 });
  await using server = await Peer.connect<CrcMessage>(hub.addr, new CrcDecoder());
  await server.write(
    encodeCrc({ kind: "server_registration", source: 2, lastHop: 0, name: "s", info: "" }),
  );
  await server.take(1);
  const many = Array.from(
    { length: 300 },
    (_, i) =>
      encodeCrc({
        kind: "client_registration",
        source: 1000 + i,
        lastHop: 2,
        name: `u${i}`,
        info: "",
      }),
  );
  await server.write(new Uint8Array(many.flatMap((f) => [...f])));
  // 300 registrations are about 6 KiB, three times the queue limit.
  await using alice = await Peer.connect<CrcMessage>(hub.addr, new CrcDecoder());
  await alice.write(
    encodeCrc({ kind: "client_registration", source: 101, lastHop: 0, name: "alice", info: "" }),
  );
  await waitUntil(() => hub.state().hosts.length === 302, 3000, "every registration");
  const frames = await alice.take(301);
  deepStrictEqual(frames[0].kind, "status");
  deepStrictEqual(frames.slice(1).map((m) => m.source), many.map((_, i) => 1000 + i));
  ok(!alice.ended, "alice stays connected");
});

Deno.test("serveCrcNode(): a connection past --max-per-ip gets a refusal status (code 2, to 0), then is closed", async () => {
  await using node = await serveCrcNode({ id: 7, port: 0, maxPerIp: 1, exempt: [] });
  await using first = await Peer.connect(node.addr, new CrcDecoder());
  await first.write(encodeCrc({
    kind: "client_registration",
    source: 100,
    lastHop: 0,
    name: "ann",
    info: "",
  }));
  deepStrictEqual((await first.next() as CrcMessage & { kind: "status" }).code, 0); // welcome
  await using second = await Peer.connect(node.addr, new CrcDecoder());
  deepStrictEqual(await second.next(), {
    kind: "status",
    source: 7,
    destination: 0,
    code: 2,
    content: "too many connections from your address",
  });
  await second.closedByServer(3000);
});
