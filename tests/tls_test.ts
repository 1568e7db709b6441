// SPEC 8.1: TLS on every TCP server and in every client, the CRC node's outgoing link and the
// directory's peer checks. Certificates are made per test by openssl (tests/_tls.ts).
import { deepStrictEqual, match, ok, rejects, throws } from "node:assert/strict";
import { serveTimestamp } from "../servers/timestamp.ts";
import { serveChannel } from "../servers/channel.ts";
import { serveIm } from "../servers/im.ts";
import { serveCrcNode } from "../servers/crc_node.ts";
import { serveDirectory } from "../servers/directory.ts";
import { serveWeb } from "../servers/web.ts";
import { connectTimestamp } from "../clients/timestamp.ts";
import { connectChannel } from "../clients/channel.ts";
import { connectIm, type ImClient } from "../clients/im.ts";
import { CrcClient } from "../clients/crc.ts";
import { DirectoryClient, sendPeerMessage, servePeer } from "../clients/eurechat.ts";
import { connectWithTimeout, TlsHandshakeError } from "../net/dial.ts";
import { serveStream } from "../net/serve.ts";
import { receiveFrames } from "../net/framing.ts";
import { TimestampChunkDecoder } from "../protocols/timestamp.ts";
import { tlsClientOptions, tlsServerFiles, UsageError } from "../cli/command.ts";
import type { ImServerMessage } from "../protocols/im.ts";
import { EntryProcess, portOf, waitUntil, within } from "./_helpers.ts";
import { makeSelfSigned, makeTestPki } from "./_tls.ts";
import { WsPeer } from "./_web_helpers.ts";
import { configure, type LogRecord, reset } from "@logtape/logtape";

const encoder = new TextEncoder();

/** The next message of an IM client, with a timeout. */
async function nextIm(messages: AsyncGenerator<ImServerMessage>): Promise<ImServerMessage> {
  const { value, done } = await within(messages.next(), 3000, "an IM message");
  if (done) throw new Error("the IM server closed the connection");
  return value;
}

async function registerIm(client: ImClient, name: string) {
  const messages = client.messages();
  await client.send({ command: "REGISTER", username: name, status: "online" });
  deepStrictEqual((await nextIm(messages)).command, "ONLINE_USERS");
  return messages;
}

/** Reads a plain connection until the server closes it; returns everything it sent. */
async function readUntilClosed(conn: Deno.Conn, ms = 3000): Promise<Uint8Array> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(4096);
  await within(
    (async () => {
      while (true) {
        const n = await conn.read(buffer).catch(() => null);
        if (n === null) return;
        chunks.push(...buffer.subarray(0, n));
      }
    })(),
    ms,
    "the server to close the plain connection",
  );
  return new Uint8Array(chunks);
}

Deno.test("TLS timestamp: a TLS client gets its echo; the reply arrives over TLS only", async () => {
  await using pki = await makeTestPki();
  await using server = await serveTimestamp({ port: 0, tls: pki.certificate });
  using client = await connectTimestamp({ port: portOf(server.addr), tls: pki.trust });
  match(await client.request("secret"), /^\[.+\] secret$/);
  // By name and over IPv6 too: the certificate names localhost, 127.0.0.1 and ::1.
  await using six = await serveTimestamp({ hostname: "::1", port: 0, tls: pki.certificate });
  using byName = await connectTimestamp({
    hostname: "::1",
    port: portOf(six.addr),
    tls: { ...pki.trust, serverName: "localhost" },
  });
  match(await byName.request("v6"), /\] v6$/);
});

Deno.test("TLS channel: two clients create, join and chat over TLS", async () => {
  await using pki = await makeTestPki();
  await using server = serveChannel({ port: 0, tls: pki.certificate });
  const port = portOf(server.addr);
  using alice = await connectChannel("Alice", "127.0.0.1", port, pki.trust);
  using bob = await connectChannel("Bob", "127.0.0.1", port, pki.trust);
  const aliceIn = alice.messages(), bobIn = bob.messages();
  await alice.send("/create tls");
  await bob.send("/join tls");
  deepStrictEqual((await within(aliceIn.next(), 3000, "join notice")).value, "Bob has joined");
  await bob.send("hello over TLS");
  deepStrictEqual(
    (await within(aliceIn.next(), 3000, "the chat")).value,
    "[Bob] hello over TLS",
  );
  alice.close();
  bob.close();
  await within(bobIn.next(), 3000, "bob's stream to end");
});

Deno.test("TLS IM: registration, presence, a conversation and its message over TLS", async () => {
  await using pki = await makeTestPki();
  await using server = serveIm({ port: 0, presenceIntervalMs: 0, tls: pki.certificate });
  const port = portOf(server.addr);
  using alice = await connectIm("127.0.0.1", port, pki.trust);
  using bob = await connectIm("localhost", port, pki.trust);
  const aliceIn = await registerIm(alice, "alice");
  const bobIn = await registerIm(bob, "bob");
  deepStrictEqual(await nextIm(aliceIn), {
    command: "ONLINE_USERS",
    users: { alice: "online", bob: "online" },
  });
  await alice.send({ command: "INVITE", users: ["bob"] });
  const invitation = await nextIm(bobIn);
  if (invitation.command !== "INVITATION") throw new Error(`got ${invitation.command}`);
  deepStrictEqual(await nextIm(aliceIn), invitation); // the inviter is told too
  await alice.send({ command: "JOIN", conversation: invitation.conversation });
  await bob.send({ command: "JOIN", conversation: invitation.conversation });
  await bob.send({ command: "SEND_MESSAGE", conversation: invitation.conversation, message: "hi" });
  deepStrictEqual(await nextIm(aliceIn), {
    command: "MESSAGE",
    conversation: invitation.conversation,
    sender: "bob",
    message: "hi",
  });
  alice.close();
  bob.close();
});

Deno.test("TLS CRC: clients register and chat through a TLS node", async () => {
  await using pki = await makeTestPki();
  await using node = await serveCrcNode({ id: 1, port: 0, tls: pki.certificate });
  const port = portOf(node.addr);
  await using alice = await CrcClient.connect({ id: 10, username: "alice", port, tls: pki.trust });
  await using bob = await CrcClient.connect({ id: 11, username: "bob", port, tls: pki.trust });
  await waitUntil(() => alice.users.has(11), 3000, "alice to learn bob");
  await alice.chat(11, "over TLS");
  await waitUntil(() => bob.chatLog.length === 1, 3000, "bob's chat");
  deepStrictEqual(bob.chatLog[0], { source: 10, sender: "alice", text: "over TLS" });
});

Deno.test("TLS CRC: a node joins another node over TLS and chats cross the link", async () => {
  await using pki = await makeTestPki();
  await using hub = await serveCrcNode({ id: 1, port: 0, tls: pki.certificate });
  await using leaf = await serveCrcNode({
    id: 2,
    port: 0,
    tls: pki.certificate,
    connectTo: { hostname: "127.0.0.1", port: portOf(hub.addr) },
    connectTls: pki.trust,
  });
  await waitUntil(() => hub.state().adjacentServers.includes(2), 3000, "the hub to see the leaf");
  await waitUntil(() => leaf.state().adjacentServers.includes(1), 3000, "the leaf to see the hub");
  await using alice = await CrcClient.connect({
    id: 10,
    username: "alice",
    port: portOf(hub.addr),
    tls: pki.trust,
  });
  await using bob = await CrcClient.connect({
    id: 20,
    username: "bob",
    port: portOf(leaf.addr),
    tls: pki.trust,
  });
  await waitUntil(() => bob.users.has(10), 3000, "bob to learn alice across the link");
  await bob.chat(10, "through two TLS hops");
  await waitUntil(() => alice.chatLog.length === 1, 3000, "alice's chat");
  deepStrictEqual(alice.chatLog[0].text, "through two TLS hops");

  // A node with the wrong CA cannot join: one error naming the network and the TLS reason.
  await rejects(
    serveCrcNode({
      id: 3,
      port: 0,
      connectTo: { hostname: "127.0.0.1", port: portOf(hub.addr) },
      connectTls: pki.wrongTrust,
    }),
    /Cannot join the network at 127\.0\.0\.1:\d+: TLS handshake failed: invalid peer certificate: UnknownIssuer/,
  );
});

Deno.test("TLS eurechat: directory session, BIND test, liveness PING and peer messages over TLS", async () => {
  await using pki = await makeTestPki();
  await using directory = serveDirectory({
    port: 0,
    db: ":memory:",
    hashCost: 4,
    livenessIntervalMs: 0,
    tls: pki.certificate,
    peerTls: pki.trust,
  });
  const received: string[] = [];
  await using bobListener = servePeer({
    port: 0,
    tls: pki.certificate,
    onMessage: (sender, text) => received.push(`${sender}: ${text}`),
  });
  const port = portOf(directory.addr);
  await using alice = await DirectoryClient.connect("127.0.0.1", port, 3000, pki.trust);
  await using bob = await DirectoryClient.connect("127.0.0.1", port, 3000, pki.trust);
  await alice.login("alice", "pw");
  await bob.login("bob", "pw");
  // The directory tests the port with a TLS handshake before it accepts the binding.
  match(await bob.bind("127.0.0.1", portOf(bobListener.addr)), /bound successfully/);
  const [entry] = await alice.query("bob");
  deepStrictEqual(entry.port, portOf(bobListener.addr));
  await sendPeerMessage(entry, "alice", "direct and encrypted", 3000, pki.trust);
  await waitUntil(() => received.length === 1, 3000, "bob's message");
  deepStrictEqual(received, ["alice: direct and encrypted"]);
  // The liveness PING speaks TLS too, so bob stays bound.
  deepStrictEqual(await directory.checkLiveness(), []);
  deepStrictEqual([...directory.bindings.keys()], ["bob"]);
  // A plain peer is not a peer of a TLS network: its BIND is refused.
  await using plainListener = servePeer({ port: 0, onMessage: () => {} });
  await rejects(alice.bind("127.0.0.1", portOf(plainListener.addr)));

  // Control: a directory that PINGs in plain TCP loses the TLS peer at its first sweep.
  await using plainPings = serveDirectory({
    port: 0,
    db: ":memory:",
    hashCost: 4,
    livenessIntervalMs: 0,
    livenessTimeoutMs: 1000,
  });
  await using carol = await DirectoryClient.connect("127.0.0.1", portOf(plainPings.addr));
  await carol.login("carol", "pw");
  await carol.bind("127.0.0.1", portOf(bobListener.addr));
  deepStrictEqual(await plainPings.checkLiveness(), ["carol"]);
});

Deno.test("TLS web: the page over HTTPS, and each WebSocket bridged to a TLS IM server", async () => {
  await using pki = await makeTestPki();
  await using im = serveIm({ port: 0, presenceIntervalMs: 0, tls: pki.certificate });
  const imAddr = { hostname: "127.0.0.1", port: portOf(im.addr) };
  await using web = serveWeb({ port: 0, tls: pki.certificate, im: imAddr, imTls: pki.trust });
  using client = Deno.createHttpClient({ caCerts: pki.trust.caCerts });
  const page = await fetch(`https://127.0.0.1:${portOf(web.addr)}/`, { client });
  deepStrictEqual(page.status, 200);
  match(await page.text(), /<title>Parley<\/title>/);
  // The bridge's own link is TLS: a plain-HTTP bridge (so the test's WebSocket needs no CA).
  await using bridge = serveWeb({ port: 0, im: imAddr, imTls: pki.trust });
  const peer = await WsPeer.open(portOf(bridge.addr));
  try {
    peer.send(`REGISTER ${JSON.stringify(["alice", "online"])}`);
    match(await peer.next(), /^ONLINE_USERS /);
    deepStrictEqual(im.onlineUsers(), { alice: "online" });
  } finally {
    await peer.close();
  }
  // Without TLS towards a TLS IM server, the bridge cannot register anyone.
  await using wrong = serveWeb({ port: 0, im: imAddr, imTls: pki.wrongTrust });
  const refused = await WsPeer.open(portOf(wrong.addr));
  try {
    match(await refused.next(), /^ERROR /);
  } finally {
    await refused.close();
  }
});

/** Every TLS server, started on a free port, with a plain message that would get a reply. */
async function everyTlsServer(certificate: { cert: string; key: string }) {
  return [
    {
      name: "timestamp",
      server: await serveTimestamp({ port: 0, tls: certificate }),
      hello: "hi\n",
    },
    {
      name: "channel",
      server: serveChannel({ port: 0, tls: certificate }),
      hello: "x".repeat(200),
    },
    {
      name: "im",
      server: serveIm({ port: 0, presenceIntervalMs: 0, tls: certificate }),
      hello: '{"command":"LIST_CONVERSATIONS"}\n',
    },
    { name: "crc", server: await serveCrcNode({ id: 1, port: 0, tls: certificate }), hello: "\0" },
    {
      name: "directory",
      server: serveDirectory({ port: 0, db: ":memory:", livenessIntervalMs: 0, tls: certificate }),
      hello: "USER 0 alice\n",
    },
    {
      name: "eurechat peer",
      server: servePeer({ port: 0, tls: certificate, onMessage: () => {} }),
      hello: "PING 0\n",
    },
  ];
}

Deno.test("A TLS server refuses plain TCP: no reply, a closed connection, and it serves TLS clients on", async () => {
  await using pki = await makeTestPki();
  const servers = await everyTlsServer(pki.certificate);
  try {
    for (const { name, server, hello } of servers) {
      const plain = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
      try {
        await plain.write(encoder.encode(hello)).catch(() => 0);
        const got = await readUntilClosed(plain);
        // At most a TLS alert record (content type 21), never protocol text.
        ok(got.length === 0 || got[0] === 21, `${name}: plain client got ${got.length} bytes`);
      } finally {
        plain.close();
      }
      const secure = await connectWithTimeout("127.0.0.1", portOf(server.addr), 3000, pki.trust);
      secure.close();
    }
  } finally {
    await Promise.all(servers.map(({ server }) => server.shutdown()));
  }
});

Deno.test("A stranger that never finishes its handshake does not stall the accept loop, and is given up on", async () => {
  await using pki = await makeTestPki();
  const records: LogRecord[] = [];
  await configure({
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["parley", "net"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  let served = 0;
  const server = serveStream(
    { port: 0, tls: pki.certificate },
    async (connection) => {
      served++;
      for await (const chunk of receiveFrames(connection, new TimestampChunkDecoder())) {
        connection.send(chunk);
      }
    },
    { tlsHandshakeTimeoutMs: 300 },
  );
  const port = portOf(server.addr);
  // Two strangers: one silent, one that sends the start of a ClientHello and stops.
  const silent = await Deno.connect({ hostname: "127.0.0.1", port });
  const half = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await half.write(new Uint8Array([22, 3, 1, 0, 200, 1, 0]));
    // Meanwhile a real client is served at once.
    const secure = await connectWithTimeout("127.0.0.1", port, 3000, pki.trust);
    await secure.write(encoder.encode("echo"));
    const buffer = new Uint8Array(16);
    const n = await within(secure.read(buffer), 3000, "the echo");
    deepStrictEqual(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), "echo");
    secure.close();
    // Once the handshake timeout passes, both are given up on (one debug line each), unserved.
    const gaveUp = () =>
      records.filter((r) => r.message.join("").includes("not done within 300 ms")).length;
    await waitUntil(() => gaveUp() === 2, 3000, "both strangers to be given up on");
    deepStrictEqual(served, 1);
    deepStrictEqual(records.map((r) => r.level), ["debug", "debug"]);
  } finally {
    silent.close();
    half.close();
    await server.shutdown();
    await reset();
  }
});

Deno.test("A TLS client with the wrong CA, or against a plain server, fails with TlsHandshakeError", async () => {
  await using pki = await makeTestPki();
  await using tlsServer = serveIm({ port: 0, presenceIntervalMs: 0, tls: pki.certificate });
  await rejects(
    connectIm("127.0.0.1", portOf(tlsServer.addr), pki.wrongTrust),
    (error: Error) =>
      error instanceof TlsHandshakeError &&
      /^TLS handshake failed: invalid peer certificate: UnknownIssuer/.test(error.message),
  );
  // No --ca at all: the system roots do not know a private CA either.
  await rejects(connectIm("127.0.0.1", portOf(tlsServer.addr), {}), TlsHandshakeError);
  // A name the certificate does not carry.
  await rejects(
    connectIm("127.0.0.1", portOf(tlsServer.addr), { ...pki.trust, serverName: "example.org" }),
    /TLS handshake failed: invalid peer certificate: certificate not valid for name "example\.org"/,
  );
  await using plainServer = await serveTimestamp({ port: 0 });
  await rejects(
    connectTimestamp({ port: portOf(plainServer.addr), tls: pki.trust }),
    TlsHandshakeError,
  );
});

Deno.test("A self-signed certificate is its own --ca; one openssl marks as a CA is refused with a hint", async () => {
  await using pki = await makeTestPki();
  const self = await makeSelfSigned(pki.dir);
  await using server = await serveTimestamp({ port: 0, tls: self });
  using client = await connectTimestamp({
    port: portOf(server.addr),
    tls: { caCerts: [self.cert] },
  });
  match(await client.request("self"), /\] self$/);
  const asCa = await makeSelfSigned(pki.dir, true);
  await using caServer = await serveTimestamp({ port: 0, tls: asCa });
  await rejects(
    connectTimestamp({ port: portOf(caServer.addr), tls: { caCerts: [asCa.cert] } }),
    /CaUsedAsEndEntity.*basicConstraints=critical,CA:FALSE/,
  );
});

Deno.test("TLS flags: --tls-cert and --tls-key go together, files must be PEM, --ca implies --tls", async () => {
  await using pki = await makeTestPki();
  const d = pki.dir;
  deepStrictEqual(tlsServerFiles({}), undefined);
  throws(() => tlsServerFiles({ "tls-cert": `${d}/cert.pem` }), UsageError);
  throws(
    () => tlsServerFiles({ "tls-cert": `${d}/key.pem`, "tls-key": `${d}/key.pem` }),
    UsageError,
  );
  throws(
    () => tlsServerFiles({ "tls-cert": `${d}/nope.pem`, "tls-key": `${d}/key.pem` }),
    Deno.errors.NotFound,
  );
  deepStrictEqual(
    tlsServerFiles({ "tls-cert": `${d}/cert.pem`, "tls-key": `${d}/key.pem` }),
    pki.certificate,
  );
  deepStrictEqual(tlsClientOptions({}), undefined);
  deepStrictEqual(tlsClientOptions({ tls: true }), {});
  deepStrictEqual(tlsClientOptions({ ca: `${d}/ca.pem` }), pki.trust);
  throws(() => tlsClientOptions({ ca: `${d}/key.pem` }), UsageError);
});

/** The documented grants: a server reads its two files, a client its CA, nothing else. */
const SERVER_GRANTS = ["--allow-net", "--allow-read=cert.pem,key.pem"];
const CLIENT_GRANTS = ["--allow-net", "--allow-read=ca.pem"];
const SERVER_TLS = ["--port", "0", "--tls-cert", "cert.pem", "--tls-key", "key.pem"];

Deno.test("Real processes with the documented permissions: every server over TLS, the IM and timestamp clients too", async () => {
  await using pki = await makeTestPki();
  const cwd = pki.dir;
  const start = (script: string, args: string[]) =>
    EntryProcess.start(script, [...SERVER_TLS, ...args], SERVER_GRANTS, { cwd });
  await using timestamp = start("servers/timestamp.ts", []);
  await using channel = start("servers/channel.ts", []);
  await using im = start("servers/im.ts", ["--presence-interval", "0"]);
  await using crc = start("servers/crc_node.ts", ["--id", "1"]);
  await using directory = start("servers/directory.ts", ["--hash-cost", "4"]);
  const [tsPort, chPort, imPort, crcPort, dirPort] = await Promise.all(
    [timestamp, channel, im, crc, directory].map((p) => p.listeningPort()),
  );
  // In-process clients against each server process.
  using channelClient = await connectChannel("Alice", "127.0.0.1", chPort, pki.trust);
  await channelClient.send("/list");
  deepStrictEqual((await within(channelClient.messages().next(), 3000, "/list")).value, "");
  await using crcClient = await CrcClient.connect({
    id: 5,
    username: "carol",
    port: crcPort,
    tls: pki.trust,
  });
  await waitUntil(() => crcClient.statusLog.length === 1, 3000, "the CRC welcome");
  await using dirClient = await DirectoryClient.connect("127.0.0.1", dirPort, 3000, pki.trust);
  await dirClient.login("dave", "pw");
  deepStrictEqual(await dirClient.query(), []);

  // Client processes with --tls --ca and read access to ca.pem only.
  await using tsClient = EntryProcess.start(
    "clients/timestamp.ts",
    ["--port", String(tsPort), "--tls", "--ca", "ca.pem"],
    CLIENT_GRANTS,
    { cwd, stdin: true },
  );
  await tsClient.type("over tls\n");
  await tsClient.waitFor(/\] over tls\n> /);
  await tsClient.type("\n");
  deepStrictEqual((await tsClient.exited()).code, 0);

  using bob = await connectIm("127.0.0.1", imPort, pki.trust);
  const bobIn = await registerIm(bob, "bob");
  await using aliceProcess = EntryProcess.start(
    "clients/im.ts",
    ["--user", "alice", "--port", String(imPort), "--tls", "--ca", "ca.pem"],
    CLIENT_GRANTS,
    { cwd, stdin: true },
  );
  deepStrictEqual((await nextIm(bobIn)).command, "ONLINE_USERS");
  await aliceProcess.type("/invite bob\n");
  const invitation = await nextIm(bobIn);
  deepStrictEqual(invitation.command, "INVITATION");
  await aliceProcess.type("/quit\n");
  deepStrictEqual((await aliceProcess.exited()).code, 0);
  bob.close();
});

Deno.test("Real processes: eurechat peers talk over TLS through a TLS directory that tests their ports over TLS", async () => {
  await using pki = await makeTestPki();
  const cwd = pki.dir;
  await using directory = EntryProcess.start(
    "servers/directory.ts",
    [...SERVER_TLS, "--hash-cost", "4", "--tls", "--ca", "ca.pem"],
    ["--allow-net", "--allow-read=cert.pem,key.pem,ca.pem"],
    { cwd },
  );
  const dirPort = await directory.listeningPort();
  const peer = (user: string) =>
    EntryProcess.start(
      "clients/eurechat.ts",
      [
        "--user",
        user,
        "--password",
        "pw",
        "--directory-port",
        String(dirPort),
        "--tls",
        "--ca",
        "ca.pem",
        "--tls-cert",
        "cert.pem",
        "--tls-key",
        "key.pem",
      ],
      ["--allow-net", "--allow-read=ca.pem,cert.pem,key.pem"],
      { cwd, stdin: true },
    );
  await using alice = peer("alice");
  await using bob = peer("bob");
  await Promise.all([alice.waitFor(/Logged in as alice/), bob.waitFor(/Logged in as bob/)]);
  // The directory accepted both bindings after a TLS handshake with each peer's listener.
  await directory.waitFor(/bob bound to/);
  await alice.type("/msg bob hello, encrypted\n");
  await bob.waitFor(/\[alice\] hello, encrypted\n/);
  await alice.type("/who\n");
  await alice.waitFor(/bob 127\.0\.0\.1:\d+\n/);
  await alice.type("/quit\n");
  await bob.type("/quit\n");
  deepStrictEqual([(await alice.exited()).code, (await bob.exited()).code], [0, 0]);
});

Deno.test("Real processes: every client with the wrong CA fails with one line and exit 1", async () => {
  await using pki = await makeTestPki();
  await using timestamp = await serveTimestamp({ port: 0, tls: pki.certificate });
  await using channel = serveChannel({ port: 0, tls: pki.certificate });
  await using im = serveIm({ port: 0, presenceIntervalMs: 0, tls: pki.certificate });
  await using crc = await serveCrcNode({ id: 1, port: 0, tls: pki.certificate });
  await using directory = serveDirectory({
    port: 0,
    db: ":memory:",
    livenessIntervalMs: 0,
    tls: pki.certificate,
  });
  const wrong = ["--tls", "--ca", "other-ca.pem"];
  const runs: [string, string[]][] = [
    ["clients/timestamp.ts", ["--port", String(portOf(timestamp.addr)), ...wrong]],
    ["clients/channel.ts", ["Alice", "127.0.0.1", String(portOf(channel.addr)), ...wrong]],
    ["clients/im.ts", ["--user", "alice", "--port", String(portOf(im.addr)), ...wrong]],
    ["clients/crc.ts", ["--username", "alice", "--serverport", String(portOf(crc.addr)), ...wrong]],
    [
      "clients/eurechat.ts",
      ["--user", "alice", "--password", "pw", "--directory-port", String(portOf(directory.addr))]
        .concat(wrong),
    ],
    [
      "servers/crc_node.ts",
      ["--id", "2", "--port", "0", "--connect-to-port", String(portOf(crc.addr)), ...wrong],
    ],
  ];
  await Promise.all(runs.map(async ([script, args]) => {
    await using child = EntryProcess.start(script, args, [
      "--allow-net",
      "--allow-read=other-ca.pem",
    ], { cwd: pki.dir });
    deepStrictEqual((await child.exited()).code, 1, `${script}: ${child.output}`);
    const lines = child.output.split("\n").filter((l) => l !== "" && !/Listening on/.test(l));
    deepStrictEqual(lines.length, 1, `${script} printed:\n${child.output}`);
    match(lines[0], /TLS handshake failed: invalid peer certificate: UnknownIssuer/, script);
  }));
});

Deno.test("Real process: a TLS server logs one debug line for a plain client, no stack trace, and serves on", async () => {
  await using pki = await makeTestPki();
  await using server = EntryProcess.start(
    "servers/im.ts",
    [...SERVER_TLS, "--log-level", "debug"],
    SERVER_GRANTS,
    { cwd: pki.dir },
  );
  const port = await server.listeningPort();
  const plain = await Deno.connect({ hostname: "127.0.0.1", port });
  await plain.write(encoder.encode('{"command":"LIST_CONVERSATIONS"}\n'));
  await readUntilClosed(plain);
  plain.close();
  await server.waitFor(/TLS handshake with 127\.0\.0\.1:\d+ failed/);
  using client = await connectIm("127.0.0.1", port, pki.trust);
  await registerIm(client, "alice");
  client.close();
  deepStrictEqual((await server.stop()).code, 0);
  const failures = server.output.split("\n").filter((l) => /TLS handshake/.test(l));
  deepStrictEqual(failures.length, 1, server.output);
  ok(!/^\s+at /m.test(server.output), `a stack trace in:\n${server.output}`);
});
