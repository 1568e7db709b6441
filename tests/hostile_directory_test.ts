/**
 * The directory against strangers (SPEC.md 6.2-6.5): each test attacks a real
 * directory over loopback, bounded in count and time, and checks that the
 * attacker gets the SPEC's reply while a normal client is still served.
 *
 * Two addresses on one machine: the directory listens on `::` (both IPv4 and
 * IPv6), the attacker comes from `::1` and the normal client from `127.0.0.1`.
 */
import { deepStrictEqual, match, ok } from "node:assert/strict";
import {
  DIRECTORY_TEXTS,
  encodeEurechat,
  EurechatDecoder,
  type EurechatMessage,
  payloadText,
} from "../protocols/eurechat.ts";
import { type DirectoryOptions, serveDirectory } from "../servers/directory.ts";
import { DirectoryClient, servePeer } from "../clients/eurechat.ts";
import { EntryProcess, Peer, portOf } from "./_helpers.ts";

const FAST: DirectoryOptions = { port: 0, db: ":memory:", hashCost: 4, livenessIntervalMs: 0 };
const enc = new TextEncoder();

function hasIpv6(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}
const IPV6 = hasIpv6();

async function connect(server: { addr: Deno.Addr }, from: "127.0.0.1" | "::1" = "127.0.0.1") {
  const conn = await Deno.connect({ hostname: from, port: portOf(server.addr) });
  return new Peer<EurechatMessage>(conn, new EurechatDecoder({ maxPayloadBytes: 1024 * 1024 }));
}

async function say(peer: Peer<EurechatMessage>, type: string, args: string[] = []) {
  await peer.write(encodeEurechat(type, args));
  const m = await peer.next(5000);
  return `${m.type} ${payloadText(m)}`;
}

async function login(
  server: { addr: Deno.Addr },
  name: string,
  password = "pw",
  from: "127.0.0.1" | "::1" = "127.0.0.1",
) {
  const peer = await connect(server, from);
  deepStrictEqual(await say(peer, "USER", [name]), `ACK hi ${name}, authentication required`);
  const reply = await say(peer, "PASS", [password]);
  return { peer, reply };
}

async function loggedIn(server: { addr: Deno.Addr }, name: string, password = "pw") {
  const { peer, reply } = await login(server, name, password);
  deepStrictEqual(reply, "ACK successfully authenticated");
  return peer;
}

/** The normal client: logs in, binds a live peer, finds itself. */
async function normalClientIsServed(server: { addr: Deno.Addr }, name = "normal") {
  await using listener = servePeer({ onMessage: () => {} });
  await using peer = await loggedIn(server, name);
  const port = portOf(listener.addr);
  deepStrictEqual(
    await say(peer, "BIND", ["127.0.0.1", String(port)]),
    `ACK bound successfully to 127.0.0.1:${port}`,
  );
  deepStrictEqual(await say(peer, "QUERY", [name]), `RESULT ${name},127.0.0.1,${port}`);
  deepStrictEqual(await say(peer, "LEAVE"), "ACK deregistered from directory");
}

Deno.test("hostile directory: names with control or bidi characters, commas or over 32 bytes are refused", async () => {
  await using directory = serveDirectory(FAST);
  for (
    const name of [
      "bell\x07",
      "esc\x1b[2J",
      "rtl\u202eevil",
      "a,b",
      "x".repeat(33),
      "n".repeat(1004),
    ]
  ) {
    await using attacker = await connect(directory);
    await attacker.write(enc.encode(`USER 0 ${name}\n`));
    const m = await attacker.next();
    deepStrictEqual(`${m.type} ${payloadText(m)}`, `ERR ${DIRECTORY_TEXTS.userExpected}`, name);
    await attacker.closedByServer();
  }
  await normalClientIsServed(directory);
});

Deno.test("hostile directory: --max-bound caps the bound users; a rebind at the cap still works", async () => {
  await using directory = serveDirectory({ ...FAST, maxBound: 2 });
  await using listener = servePeer({ onMessage: () => {} });
  const port = String(portOf(listener.addr));
  await using one = await loggedIn(directory, "one");
  await using two = await loggedIn(directory, "two");
  for (const p of [one, two]) {
    deepStrictEqual((await say(p, "BIND", ["127.0.0.1", port])).slice(0, 3), "ACK");
  }
  await using three = await loggedIn(directory, "three");
  deepStrictEqual(await say(three, "BIND", ["127.0.0.1", port]), `ERR ${DIRECTORY_TEXTS.full}`);
  await three.closedByServer();
  deepStrictEqual(
    await say(one, "BIND", ["localhost", port]),
    `ACK bound successfully to localhost:${port}`,
  );
  deepStrictEqual(directory.bindings.size, 2);
});

Deno.test("hostile directory: BIND to a port below 1024 or to the directory's own port is refused", async () => {
  await using directory = serveDirectory(FAST);
  // A privileged port that answers, where this test may open one (it runs as root in CI).
  let low: Deno.Listener | undefined;
  for (const port of [1000, 1001, 1002]) {
    try {
      low = Deno.listen({ hostname: "127.0.0.1", port });
      break;
    } catch { /* not permitted or in use */ }
  }
  const targets = [String(portOf(directory.addr)), ...(low ? [String(portOf(low.addr))] : [])];
  for (const port of targets) {
    await using attacker = await loggedIn(directory, "prober");
    deepStrictEqual(
      await say(attacker, "BIND", ["127.0.0.1", port]),
      `ERR ${DIRECTORY_TEXTS.invalidBind}`,
    );
    await attacker.closedByServer();
  }
  low?.close();
  deepStrictEqual(directory.bindings.size, 0);
  await normalClientIsServed(directory);
});

Deno.test({
  name: "hostile directory: wrong guesses from one address never lock the account out for another",
  ignore: !IPV6,
  fn: async () => {
    await using directory = serveDirectory({ ...FAST, hostname: "::", maxLoginFailures: 5 });
    (await loggedIn(directory, "victim", "right")).close();
    for (let i = 0; i < 5; i++) {
      const { peer, reply } = await login(directory, "victim", `guess${i}`, "::1");
      deepStrictEqual(reply, `ERR ${DIRECTORY_TEXTS.authFailed}`);
      await peer.close();
    }
    const { peer, reply } = await login(directory, "victim", "right", "::1");
    match(reply, /^ERR too many failed logins, try again in \d+ seconds$/);
    await peer.closedByServer();
    await peer.close();
    await (await loggedIn(directory, "victim", "right")).close(); // from 127.0.0.1
    await normalClientIsServed(directory);
  },
});

Deno.test({
  name: "hostile directory: at most --signups-per-minute new accounts per address",
  ignore: !IPV6,
  fn: async () => {
    await using directory = serveDirectory({
      ...FAST,
      hostname: "::",
      signupsPerMinute: 3,
      exempt: [],
    });
    for (let i = 0; i < 3; i++) {
      const { peer, reply } = await login(directory, `spam${i}`, "pw", "::1");
      deepStrictEqual(reply, "ACK successfully authenticated");
      await peer.close();
    }
    const { peer, reply } = await login(directory, "spam3", "pw", "::1");
    match(reply, /^ERR too many new accounts from your address, try again in \d+ seconds$/);
    await peer.close();
    // The flood's own accounts still log in; another address still signs up.
    await (await login(directory, "spam0", "pw", "::1")).peer.close();
    await normalClientIsServed(directory);
  },
});

Deno.test("hostile directory: past --hash-queue a login gets 'server busy'; the queued ones are served", async () => {
  await using directory = serveDirectory({
    ...FAST,
    hashCost: 15,
    hashConcurrency: 1,
    hashQueue: 2,
  });
  const peers = [];
  for (let i = 0; i < 4; i++) {
    const peer = await connect(directory);
    deepStrictEqual(await say(peer, "USER", [`u${i}`]), `ACK hi u${i}, authentication required`);
    peers.push(peer);
  }
  await Promise.all(peers.map((p) => p.write(encodeEurechat("PASS", ["pw"]))));
  const replies = await Promise.all(peers.map(async (p) => {
    const m = await p.next(10_000);
    return `${m.type} ${payloadText(m)}`;
  }));
  deepStrictEqual(replies.filter((r) => r === `ERR ${DIRECTORY_TEXTS.busy}`).length, 1);
  deepStrictEqual(replies.filter((r) => r === "ACK successfully authenticated").length, 3);
  for (const p of peers) await p.close();
});

Deno.test("hostile directory: a session that hangs up while its hash waits never gets it computed", async () => {
  await using directory = serveDirectory({ ...FAST, hashCost: 15, hashConcurrency: 1 });
  // Two honest logins keep the only hash slot busy while ten sign-ups queue behind them and hang up.
  const honest = [await connect(directory), await connect(directory)];
  const quitters = [];
  for (let i = 0; i < 10; i++) quitters.push(await connect(directory));
  for (const [i, p] of honest.entries()) await say(p, "USER", [`honest${i}`]);
  for (const [i, p] of quitters.entries()) await say(p, "USER", [`quitter${i}`]);
  for (const p of honest) await p.write(encodeEurechat("PASS", ["pw"]));
  for (const p of quitters) {
    await p.write(encodeEurechat("PASS", ["first"]));
    await p.close();
  }
  for (const p of honest) {
    const m = await p.next(10_000);
    deepStrictEqual(`${m.type} ${payloadText(m)}`, "ACK successfully authenticated");
    await p.close();
  }
  // Had a quitter's hash been computed, its account would exist with the password "first".
  for (const i of [0, 9]) {
    const { peer, reply } = await login(directory, `quitter${i}`, "second");
    deepStrictEqual(reply, "ACK successfully authenticated", `quitter${i}`);
    await peer.close();
  }
});

Deno.test("hostile directory: a second login takes the name over; the old session cannot remove the binding", async () => {
  await using directory = serveDirectory(FAST);
  await using listener = servePeer({ onMessage: () => {} });
  const port = String(portOf(listener.addr));
  await using old = await loggedIn(directory, "alice");
  deepStrictEqual((await say(old, "BIND", ["127.0.0.1", port])).slice(0, 3), "ACK");
  await using current = await loggedIn(directory, "alice");
  const kicked = await old.next();
  deepStrictEqual(`${kicked.type} ${payloadText(kicked)}`, `ERR ${DIRECTORY_TEXTS.takenOver}`);
  await old.closedByServer();
  await old.write(encodeEurechat("LEAVE")).catch(() => {}); // the old client's /quit
  deepStrictEqual(await say(current, "QUERY", ["alice"]), `RESULT alice,127.0.0.1,${port}`);
  deepStrictEqual(await say(current, "LEAVE"), "ACK deregistered from directory");
  deepStrictEqual(directory.bindings.size, 0);
});

Deno.test("hostile directory: USER+PASS must finish within --register-timeout", async () => {
  await using directory = serveDirectory({
    ...FAST,
    registerTimeoutMs: 300,
    idleTimeoutMs: 30_000,
  });
  await using slow = await connect(directory);
  deepStrictEqual(await say(slow, "USER", ["slow"]), "ACK hi slow, authentication required");
  const m = await slow.next(3000);
  deepStrictEqual(`${m.type} ${payloadText(m)}`, `ERR ${DIRECTORY_TEXTS.registerTimeout}`);
  await slow.closedByServer();
  await normalClientIsServed(directory);
});

Deno.test("hostile directory: single bytes do not reset the idle timer, complete messages do", async () => {
  await using directory = serveDirectory({ ...FAST, idleTimeoutMs: 300 });
  await using dripper = await loggedIn(directory, "dripper");
  const started = performance.now();
  const header = enc.encode(
    "QUERY 0 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  );
  // One byte every 50 ms (bounded: at most 3 s), until the directory closes the session.
  for (let i = 0; i < header.length && !dripper.ended && performance.now() - started < 3000; i++) {
    await dripper.write(header.subarray(i, i + 1)).catch(() => {});
    await dripper.waitFor(() => dripper.ended, 50, "a close").catch(() => {});
  }
  ok(dripper.ended, "the dripping session was never closed");
  const m = dripper.frames.shift();
  deepStrictEqual(m && `${m.type} ${payloadText(m)}`, `ERR ${DIRECTORY_TEXTS.idle}`);
  // A session that sends complete messages more often than the timeout stays.
  await using busy = await loggedIn(directory, "busy");
  for (let i = 0; i < 8; i++) {
    deepStrictEqual(await say(busy, "QUERY", ["nobody"]), "RESULT ");
    await busy.waitFor(() => busy.ended, 100, "").catch(() => {});
  }
  ok(!busy.ended);
});

Deno.test({
  name:
    "hostile directory: servers/directory.ts takes --exempt '', --signups-per-minute and --max-bound",
  ignore: !IPV6,
  fn: async () => {
    const args = ["--host", "::", "--port", "0", "--db", ":memory:", "--hash-cost", "4"];
    const limits = ["--exempt", "", "--signups-per-minute", "2", "--max-bound", "1"];
    await using server = EntryProcess.start("servers/directory.ts", [...args, ...limits], [
      "--allow-net",
    ]);
    const directory = {
      addr: {
        transport: "tcp",
        hostname: "::",
        port: await server.listeningPort(),
      } as Deno.NetAddr,
    };
    for (const name of ["s1", "s2"]) (await login(directory, name, "pw", "::1")).peer.close();
    const { peer, reply } = await login(directory, "s3", "pw", "::1");
    match(reply, /^ERR too many new accounts from your address/);
    await peer.close();
    await using listener = servePeer({ onMessage: () => {} });
    const port = String(portOf(listener.addr));
    await using first = await loggedIn(directory, "first");
    deepStrictEqual((await say(first, "BIND", ["127.0.0.1", port])).slice(0, 3), "ACK");
    await using second = await loggedIn(directory, "second");
    deepStrictEqual(await say(second, "BIND", ["127.0.0.1", port]), `ERR ${DIRECTORY_TEXTS.full}`);
    deepStrictEqual((await server.stop()).code, 0);
  },
});

Deno.test({
  name:
    "hostile directory: past --max-per-ip a connection gets ERR 'too many connections from your address'",
  ignore: !IPV6,
  fn: async () => {
    await using directory = serveDirectory({ ...FAST, hostname: "::", maxPerIp: 2, exempt: [] });
    const one = await login(directory, "one", "pw", "::1");
    await using _one = one.peer;
    await using two = await connect(directory, "::1");
    await using three = await connect(directory, "::1");
    const m = await three.next();
    deepStrictEqual(`${m.type} ${payloadText(m)}`, "ERR too many connections from your address");
    await three.closedByServer();
    deepStrictEqual(await say(one.peer, "QUERY"), "RESULT ");
    deepStrictEqual(two.ended, false);
    await normalClientIsServed(directory); // from 127.0.0.1
  },
});

Deno.test("hostile directory: a full QUERY at the caps (10,000 names of 32 bytes, 64-byte addresses) reaches Parley's client", async () => {
  await using directory = serveDirectory(FAST);
  // Filling the table directly stands in for 10,000 logins and BINDs of the longest names allowed.
  const bindings = directory.bindings as Map<string, { addr: string; port: number }>;
  for (let i = 0; i < 10_000; i++) {
    bindings.set(String(i).padStart(32, "n"), { addr: "a".repeat(64), port: 65535 });
  }
  await using client = await DirectoryClient.connect("127.0.0.1", portOf(directory.addr));
  await client.login("reader", "pw");
  const everyone = await client.query();
  deepStrictEqual(everyone.length, 10_000);
  deepStrictEqual(everyone[9_999], {
    name: "n".repeat(28) + "9999",
    addr: "a".repeat(64),
    port: 65535,
  });
});
