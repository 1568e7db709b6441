import { deepStrictEqual, match, ok, throws } from "node:assert/strict";
import {
  encodeEurechat,
  EurechatDecoder,
  type EurechatMessage,
  payloadText,
} from "../protocols/eurechat.ts";
import type { FrameDecoder } from "../protocols/frames.ts";
import { DIRECTORY_TEXTS } from "../protocols/eurechat.ts";
import { type DirectoryOptions, pingPeer, serveDirectory } from "../servers/directory.ts";
import { DirectoryClient, servePeer } from "../clients/eurechat.ts";
import { LoginThrottle } from "../servers/_accounts.ts";
import { EntryProcess, Peer, portOf, waitUntil } from "./_helpers.ts";

const enc = new TextEncoder();
const FAST: DirectoryOptions = { port: 0, db: ":memory:", hashCost: 4, livenessIntervalMs: 0 };

/** Raw bytes as text, for byte-for-byte checks. */
class Raw implements FrameDecoder<string> {
  #d = new TextDecoder();
  decode(chunk: Uint8Array) {
    return [this.#d.decode(chunk, { stream: true })];
  }
  end() {}
}

async function rawReply(peer: Peer<string>, expected: string): Promise<string> {
  let got = "";
  while (got.length < expected.length) got += await peer.next();
  return got;
}

async function session(server: { addr: Deno.Addr }) {
  return await Peer.connect<EurechatMessage>(server.addr, new EurechatDecoder());
}

async function say(peer: Peer<EurechatMessage>, type: string, args: string[] = [], payload = "") {
  await peer.write(encodeEurechat(type, args, payload));
  const m = await peer.next();
  return `${m.type} ${payloadText(m)}`;
}

/** A peer listener that answers PING with PONG, on a free loopback port. */
function livePeer() {
  return servePeer({ onMessage: () => {} });
}

Deno.test("serveDirectory() replays the SPEC.md 1.2 transcript byte for byte", async () => {
  await using directory = serveDirectory(FAST);
  // The transcript's own port when it is free (it usually is), any port otherwise.
  let target: Deno.Listener;
  try {
    target = Deno.listen({ hostname: "127.0.0.1", port: 5555 });
  } catch {
    target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  }
  const port = portOf(target.addr);
  const accepting = (async () => {
    for await (const c of target) c.close();
  })();
  await using peer = await Peer.connect(directory.addr, new Raw());
  const steps: [string, string][] = [
    ["USER 0 corrado\n", "ACK 35\nhi corrado, authentication required"],
    ["PASS 0 mypass\n", "ACK 26\nsuccessfully authenticated"],
    [
      `BIND 0 127.0.0.1 ${port}\n`,
      `ACK ${32 + String(port).length}\nbound successfully to 127.0.0.1:${port}`,
    ],
    ["QUERY 0\n", `RESULT ${18 + String(port).length}\ncorrado,127.0.0.1,${port}`],
  ];
  for (const [send, expect] of steps) {
    await peer.write(enc.encode(send));
    deepStrictEqual(await rawReply(peer, expect), expect);
  }
  target.close();
  await accepting;
});

Deno.test("serveDirectory() gives the exact SPEC.md example lengths for port 5555", () => {
  deepStrictEqual(
    new TextDecoder().decode(encodeEurechat("ACK", [], DIRECTORY_TEXTS.bound("127.0.0.1", 5555))),
    "ACK 36\nbound successfully to 127.0.0.1:5555",
  );
  deepStrictEqual(
    new TextDecoder().decode(encodeEurechat("RESULT", [], "corrado,127.0.0.1,5555")),
    "RESULT 22\ncorrado,127.0.0.1,5555",
  );
});

Deno.test("serveDirectory() accepts LOGIN for USER, answers QUERY for one or unknown names, and LEAVE", async () => {
  await using directory = serveDirectory(FAST);
  await using listener = livePeer();
  const port = portOf(listener.addr);
  await using a = await session(directory);
  deepStrictEqual(await say(a, "LOGIN", ["alice"]), "ACK hi alice, authentication required");
  deepStrictEqual(await say(a, "PASS", ["pw"]), "ACK successfully authenticated");
  deepStrictEqual(
    await say(a, "BIND", ["127.0.0.1", String(port)]),
    `ACK bound successfully to 127.0.0.1:${port}`,
  );
  deepStrictEqual(
    await say(a, "BIND", ["localhost", String(port)]),
    `ACK bound successfully to localhost:${port}`,
  ); // replaces
  deepStrictEqual(await say(a, "QUERY", ["alice"]), `RESULT alice,localhost,${port}`);
  deepStrictEqual(await say(a, "QUERY", ["nobody"]), "RESULT ");
  deepStrictEqual(await say(a, "LEAVE"), "ACK deregistered from directory");
  deepStrictEqual(await say(a, "QUERY"), "RESULT ");
  deepStrictEqual(directory.bindings.size, 0);
});

Deno.test("serveDirectory() answers each session mistake with the exact ERR text and closes", async () => {
  await using directory = serveDirectory({ ...FAST, signup: "closed" });
  const cases: [string[][], string][] = [
    [[["PASS", "x"]], DIRECTORY_TEXTS.userExpected],
    [[["USER", "a", "b"]], DIRECTORY_TEXTS.userExpected],
    [[["USER", "a"], ["QUERY"]], DIRECTORY_TEXTS.passExpected],
    [[["USER", "a"], ["PASS"]], DIRECTORY_TEXTS.passExpected],
    [[["USER", "ghost"], ["PASS", "pw"]], DIRECTORY_TEXTS.authFailed],
  ];
  for (const [messages, expected] of cases) {
    await using peer = await session(directory);
    for (const [type, ...args] of messages) await peer.write(encodeEurechat(type, args));
    const replies: string[] = [];
    await peer.closedByServer();
    for (const m of peer.frames) replies.push(`${m.type} ${payloadText(m)}`);
    deepStrictEqual(replies.at(-1), `ERR ${expected}`);
  }
  deepStrictEqual(expectedTexts(), [
    "a 'USER <username>' command was expected!",
    "a 'PASS <password>' command was expected!",
    "authentication failed",
    "I did not understand the message FOO",
    "invalid bind notification",
    "shutting down idle connection (timeout)",
    "deregistered from directory",
  ]);
});

function expectedTexts() {
  return [
    DIRECTORY_TEXTS.userExpected,
    DIRECTORY_TEXTS.passExpected,
    DIRECTORY_TEXTS.authFailed,
    DIRECTORY_TEXTS.notUnderstood("FOO"),
    DIRECTORY_TEXTS.invalidBind,
    DIRECTORY_TEXTS.idle,
    DIRECTORY_TEXTS.deregistered,
  ];
}

async function loggedIn(directory: { addr: Deno.Addr }, name = "user", password = "pw") {
  const peer = await session(directory);
  await say(peer, "USER", [name]);
  deepStrictEqual(await say(peer, "PASS", [password]), "ACK successfully authenticated");
  return peer;
}

Deno.test("serveDirectory() refuses an unknown command, a BIND to a closed port and to a forbidden address", async () => {
  await using directory = serveDirectory(FAST);
  await using a = await loggedIn(directory);
  deepStrictEqual(await say(a, "FOO"), "ERR I did not understand the message FOO");
  await a.closedByServer();
  await using b = await loggedIn(directory);
  deepStrictEqual(await say(b, "USER", ["again"]), "ERR I did not understand the message USER");
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = portOf(closed.addr);
  closed.close();
  await using c = await loggedIn(directory);
  deepStrictEqual(
    await say(c, "BIND", ["127.0.0.1", String(closedPort)]),
    "ERR invalid bind notification",
  );
  await c.closedByServer();
  // 0.0.0.0 is not the address this peer connects from (and not loopback): refused before any port test.
  await using listener = livePeer();
  await using d = await loggedIn(directory);
  deepStrictEqual(
    await say(d, "BIND", ["0.0.0.0", String(portOf(listener.addr))]),
    "ERR invalid bind notification",
  );
  await using e = await loggedIn(directory);
  deepStrictEqual(await say(e, "BIND", ["127.0.0.1", "notaport"]), "ERR invalid bind notification");
  await using f = await loggedIn(directory);
  deepStrictEqual(await say(f, "BIND", ["127.0.0.1"]), "ERR I did not understand the message BIND");
  deepStrictEqual(directory.bindings.size, 0);
});

Deno.test("serveDirectory() with --allow-any-bind lets a peer bind another local address", async () => {
  await using directory = serveDirectory({ ...FAST, allowAnyBind: true });
  await using listener = servePeer({ hostname: "0.0.0.0", onMessage: () => {} });
  await using a = await loggedIn(directory);
  const port = portOf(listener.addr);
  deepStrictEqual(
    await say(a, "BIND", ["0.0.0.0", String(port)]),
    `ACK bound successfully to 0.0.0.0:${port}`,
  );
});

Deno.test("serveDirectory() closes an idle session with the seed's text", async () => {
  await using directory = serveDirectory({ ...FAST, idleTimeoutMs: 150 });
  await using a = await session(directory);
  deepStrictEqual(await say(a, "USER", ["sleepy"]), "ACK hi sleepy, authentication required");
  const m = await a.next(1000);
  deepStrictEqual(`${m.type} ${payloadText(m)}`, "ERR shutting down idle connection (timeout)");
  await a.closedByServer();
});

Deno.test("serveDirectory() answers a malformed or oversized frame with ERR and a close; others carry on", async () => {
  await using directory = serveDirectory(FAST);
  await using good = await loggedIn(directory, "good");
  for (
    const bad of ["USER x\n", "USER 70000 a\n", "A".repeat(2000), "US-ER 0 a\n", "USER 0 a \n"]
  ) {
    await using peer = await session(directory);
    await peer.write(enc.encode(bad));
    const m = await peer.next();
    deepStrictEqual(m.type, "ERR");
    match(payloadText(m), /^Cannot decode frame: /);
    await peer.closedByServer();
  }
  deepStrictEqual(await say(good, "QUERY"), "RESULT ");
});

Deno.test("serveDirectory() handles messages split into single bytes and many in one write", async () => {
  await using directory = serveDirectory(FAST);
  await using a = await session(directory);
  const bytes = enc.encode("USER 0 split\nPASS 0 pw\nQUERY 0\n");
  for (let i = 0; i < bytes.length; i++) await a.write(bytes.subarray(i, i + 1));
  const replies = (await a.take(3)).map((m) => `${m.type} ${payloadText(m)}`);
  deepStrictEqual(replies, [
    "ACK hi split, authentication required",
    "ACK successfully authenticated",
    "RESULT ",
  ]);
});

Deno.test("serveDirectory() checks passwords: open sign-up creates, a wrong password fails", async () => {
  await using directory = serveDirectory(FAST);
  (await loggedIn(directory, "carol", "right")).close();
  await using wrong = await session(directory);
  await say(wrong, "USER", ["carol"]);
  deepStrictEqual(await say(wrong, "PASS", ["wrong"]), "ERR authentication failed");
  await wrong.closedByServer();
  await (await loggedIn(directory, "carol", "right")).close();
});

Deno.test("serveDirectory() throttles repeated failures, even for the right password, and counts only failures", async () => {
  await using directory = serveDirectory({ ...FAST, maxLoginFailures: 3, loginLockoutMs: 60_000 });
  for (let i = 0; i < 10; i++) await (await loggedIn(directory, "dave", "right")).close(); // successes never count
  for (let i = 0; i < 3; i++) {
    await using p = await session(directory);
    await say(p, "USER", ["dave"]);
    deepStrictEqual(await say(p, "PASS", ["guess"]), "ERR authentication failed");
  }
  await using locked = await session(directory);
  await say(locked, "USER", ["dave"]);
  match(
    await say(locked, "PASS", ["right"]),
    /^ERR too many failed logins, try again in \d+ seconds$/,
  );
});

Deno.test("LoginThrottle counts attempts in flight, so parallel guesses cannot start more hashes than the limit", () => {
  let now = 0;
  const t = new LoginThrottle({
    maxFailures: 2,
    maxAddressFailures: 3,
    windowMs: 1000,
    now: () => now,
  });
  const x = { address: "a", name: "x" };
  deepStrictEqual(t.begin(x), 0);
  deepStrictEqual(t.begin(x), 0);
  ok(t.begin(x) > 0);
  t.finish(x, true);
  t.finish(x, false);
  deepStrictEqual(t.begin(x), 0); // one failure and one in flight
  ok(t.begin(x) > 0);
  t.finish(x, true);
  now = 1001;
  deepStrictEqual(t.begin(x), 0); // failures aged out
  t.finish(x, false);
  // An address with no failures is never held back by attempts in flight.
  now = 3000;
  for (let i = 0; i < 10; i++) deepStrictEqual(t.begin({ address: "gw", name: `u${i}` }), 0);
  t.finish({ address: "gw", name: "u0" }, true);
  ok(t.begin({ address: "gw", name: "other" }) > 0); // now it has failed: the 9 in flight count
});

Deno.test("LoginThrottle counts per address and per (address, name), never per name alone", () => {
  const now = 0;
  const t = new LoginThrottle({
    maxFailures: 2,
    maxAddressFailures: 4,
    windowMs: 1000,
    now: () => now,
  });
  const fail = (address: string, name: string) => {
    deepStrictEqual(t.begin({ address, name }), 0);
    t.finish({ address, name }, true);
  };
  fail("attacker", "victim");
  fail("attacker", "victim");
  ok(t.begin({ address: "attacker", name: "victim" }) > 0, "the pair is locked");
  deepStrictEqual(t.begin({ address: "home", name: "victim" }), 0, "the victim is not");
  t.finish({ address: "home", name: "victim" }, false);
  fail("attacker", "a");
  fail("attacker", "b");
  ok(t.begin({ address: "attacker", name: "c" }) > 0, "the address is locked after 4");
  deepStrictEqual(t.begin({ address: "home", name: "c" }), 0);
});

Deno.test("LoginThrottle forgets names whose failures aged out, so made-up names cannot grow it", () => {
  let now = 0;
  const t = new LoginThrottle({ maxFailures: 2, windowMs: 1000, now: () => now });
  for (let i = 0; i < 10_000; i++) {
    const attempt = { address: `10.0.${i >> 8}.${i & 255}`, name: `guess${i}` };
    deepStrictEqual(t.begin(attempt), 0);
    t.finish(attempt, true);
    now += 1; // 1,000 failures per window
  }
  ok(t.size < 4096 + 2002, `tracking ${t.size} keys`);
  const before = t.size;
  const fresh = { address: "10.9.9.9", name: "fresh" };
  deepStrictEqual(t.begin(fresh), 0);
  t.finish(fresh, false);
  deepStrictEqual(t.size, before); // a success leaves nothing behind
});

Deno.test("servers/directory.ts keeps accounts across restarts in --db, with no password in the file; adduser for closed sign-up", async () => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/accounts.db`;
  const flags = ["--allow-net", "--allow-read", "--allow-write"];
  const args = ["--port", "0", "--db", db, "--hash-cost", "4", "--signup", "closed"];
  await using add = EntryProcess.start(
    "servers/directory.ts",
    ["adduser", "erin", "--db", db, "--hash-cost", "4"],
    flags,
    { stdin: true },
  );
  await add.type("Sup3rSecretPw\n");
  await add.closeStdin();
  deepStrictEqual((await add.exited()).code, 0);
  match(add.output, /Added user erin/);
  for (let round = 0; round < 2; round++) {
    await using server = EntryProcess.start("servers/directory.ts", args, flags);
    const port = await server.listeningPort();
    await using client = await DirectoryClient.connect("127.0.0.1", port);
    await client.login("erin", "Sup3rSecretPw");
    await using stranger = await DirectoryClient.connect("127.0.0.1", port);
    const refused = await stranger.login("frank", "pw").then(() => "accepted", (e) => e.message);
    deepStrictEqual(refused, "authentication failed");
    deepStrictEqual((await server.stop()).code, 0);
  }
  const bytes = await Deno.readFile(db);
  ok(
    !new TextDecoder("latin1").decode(bytes).includes("Sup3rSecretPw"),
    "the password is in the database file",
  );
  await using del = EntryProcess.start(
    "servers/directory.ts",
    ["deluser", "erin", "--db", db],
    flags,
  );
  deepStrictEqual((await del.exited()).code, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("pingPeer() needs a PONG in time", async () => {
  await using live = livePeer();
  deepStrictEqual(await pingPeer("127.0.0.1", portOf(live.addr), 1000), { ok: true });
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })();
  const result = await pingPeer("127.0.0.1", portOf(silent.addr), 150);
  deepStrictEqual(result, { ok: false, reason: "no PONG in time" });
  silent.close();
  await accepting;
  for (const c of held) c.close();
});

Deno.test("serveDirectory() liveness checker deregisters a killed peer and a silent one within interval plus timeout", async () => {
  await using directory = serveDirectory({
    ...FAST,
    livenessIntervalMs: 200,
    livenessTimeoutMs: 200,
  });
  const alive = livePeer();
  const doomed = livePeer();
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })();
  const peers: [string, Deno.Addr][] = [["alive", alive.addr], ["doomed", doomed.addr], [
    "silent",
    silent.addr,
  ]];
  const sessions = [];
  for (const [name, addr] of peers) {
    const s = await loggedIn(directory, name);
    deepStrictEqual((await say(s, "BIND", ["127.0.0.1", String(portOf(addr))])).slice(0, 3), "ACK");
    sessions.push(s);
  }
  deepStrictEqual([...directory.bindings.keys()], ["alive", "doomed", "silent"]);
  await doomed.shutdown();
  const started = performance.now();
  await waitUntil(() => directory.bindings.size === 1, 2000, "dead peers to be deregistered");
  ok(performance.now() - started < 2 * (200 + 200) + 200);
  deepStrictEqual([...directory.bindings.keys()], ["alive"]);
  for (const s of sessions) await s.close();
  await alive.shutdown();
  silent.close();
  await accepting;
  for (const c of held) c.close();
});

Deno.test("clients/eurechat.ts: two peers log in, find each other and exchange messages; /quit leaves", async () => {
  await using directory = serveDirectory(FAST);
  const dport = String(portOf(directory.addr));
  const start = (user: string) =>
    EntryProcess.start(
      "clients/eurechat.ts",
      ["--user", user, "--password", "pw", "--directory-port", dport],
      ["--allow-net"],
      { stdin: true },
    );
  await using alice = start("alice");
  await using bob = start("bob");
  await alice.waitFor(/Logged in as alice, reachable at 127\.0\.0\.1:\d+/);
  await bob.waitFor(/Logged in as bob/);
  await alice.type("/who\n");
  await alice.waitFor(
    /alice 127\.0\.0\.1:\d+\n(.|\n)*bob 127\.0\.0\.1:\d+\n|bob 127\.0\.0\.1:\d+\n(.|\n)*alice/,
  );
  await alice.type("/msg bob Hello there, bob!\n");
  await bob.waitFor(/\[alice\] Hello there, bob!\n/);
  await bob.type("/msg alice Hi alice\n");
  await alice.waitFor(/\[bob\] Hi alice\n/);
  await bob.type("/msg nobody hey\n");
  await bob.waitFor(/nobody is not online\n/);
  await bob.type("/quit\n");
  deepStrictEqual((await bob.exited()).code, 0);
  await waitUntil(() => !directory.bindings.has("bob"), 2000, "bob to leave");
  await alice.type("/msg bob still there?\n");
  await alice.waitFor(/bob is not online\n/);
  await alice.closeStdin();
  deepStrictEqual((await alice.exited()).code, 0);
});

Deno.test("servers/directory.ts with only --allow-net keeps accounts in memory and says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await using server = EntryProcess.start(
      "servers/directory.ts",
      ["--port", "0", "--hash-cost", "4"],
      ["--allow-net"],
      { cwd: dir },
    );
    const port = await server.listeningPort();
    match(server.output, /accounts are kept in memory only/);
    await using client = await DirectoryClient.connect("127.0.0.1", port);
    await client.login("zoe", "pw");
    deepStrictEqual((await server.stop()).code, 0);
    deepStrictEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("DirectoryClient.request() gives each of several requests made at once its own reply", async () => {
  await using directory = serveDirectory(FAST);
  await using listener = livePeer();
  await using client = await DirectoryClient.connect("127.0.0.1", portOf(directory.addr));
  await client.login("ann", "pw");
  await client.bind("127.0.0.1", portOf(listener.addr));
  const [one, none, all, left] = await Promise.all([
    client.query("ann"),
    client.query("nobody"),
    client.query(),
    client.leave().then(() => "left"),
  ]);
  deepStrictEqual(one.map((p) => p.name), ["ann"]);
  deepStrictEqual(none, []);
  deepStrictEqual(all.map((p) => p.name), ["ann"]);
  deepStrictEqual(left, "left");
  deepStrictEqual(await client.query(), []);
});

/** File descriptors of this process open on `path` (Linux), or undefined where /proc is missing. */
function openDescriptors(path: string): number | undefined {
  try {
    return [...Deno.readDirSync("/proc/self/fd")].filter((fd) => {
      try {
        return Deno.readLinkSync(`/proc/self/fd/${fd.name}`) === path;
      } catch {
        return false;
      }
    }).length;
  } catch {
    return undefined;
  }
}

Deno.test("serveDirectory() closes its database when it cannot listen", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const db = `${dir}/accounts.db`;
    throws(() => serveDirectory({ ...FAST, port: portOf(busy.addr), db }), /already in use/);
    const left = openDescriptors(db);
    ok(left === undefined || left === 0, `${left} descriptors still open on the database`);
    await using _directory = serveDirectory({ ...FAST, db }); // the file is usable again
    ok(openDescriptors(db) !== 0, "the check sees an open database");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
