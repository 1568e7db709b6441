// The web bridge without a browser: files and headers, the origin check, the limits of SPEC 6 on
// WebSockets, the IM server going away, and the real entry point run as SPEC says servers are run.
import { deepStrictEqual, match, ok, throws } from "node:assert/strict";
import { UsageError } from "../cli/command.ts";
import { connectIm } from "../clients/im.ts";
import { imAddress, WEB_CSP, WEB_TEXTS } from "../servers/web.ts";
import { encodeIm, IM_TEXTS } from "../protocols/im.ts";
import { writeAll } from "../net/bytes.ts";
import { EntryProcess, waitUntil } from "./_helpers.ts";
import { maskedTextFrame, rawUpgrade, startPair, WsPeer } from "./_web_helpers.ts";

const error = (text: string) => `ERROR ${JSON.stringify(text)}`;

/** Opens a socket and registers `name`; returns it after the first ONLINE_USERS. */
async function signIn(port: number, name: string, status = "online"): Promise<WsPeer> {
  const peer = await WsPeer.open(port);
  peer.send(`REGISTER ${JSON.stringify([name, status])}`);
  match(await peer.next(), /^ONLINE_USERS /);
  return peer;
}

Deno.test("serveWeb() serves the page files with a CSP that forbids inline scripts", async () => {
  await using pair = startPair();
  const page = await fetch(pair.url);
  const html = await page.text();
  deepStrictEqual(page.status, 200);
  match(page.headers.get("content-type")!, /^text\/html/);
  deepStrictEqual(page.headers.get("content-security-policy"), WEB_CSP);
  match(WEB_CSP, /script-src 'self'(;|$)/);
  ok(!WEB_CSP.includes("unsafe-inline"));
  deepStrictEqual(page.headers.get("x-content-type-options"), "nosniff");
  // The page itself has no inline script or handler: every script is a file.
  ok(!/<script(?![^>]*\bsrc=)[^>]*>/.test(html), "no inline <script>");
  ok(!/\son[a-z]+=/i.test(html), "no inline event handler");
  for (
    const [path, type] of [["app.js", /^text\/javascript/], ["model.js", /^text\/javascript/], [
      "style.css",
      /^text\/css/,
    ]] as const
  ) {
    const response = await fetch(`${pair.url}${path}`);
    deepStrictEqual(response.status, 200, path);
    match(response.headers.get("content-type")!, type);
    ok((await response.text()).length > 100, path);
  }
  const missing = await fetch(`${pair.url}nope`);
  deepStrictEqual(missing.status, 404);
  await missing.body?.cancel();
  const post = await fetch(pair.url, { method: "POST", body: "x" });
  deepStrictEqual(post.status, 405);
  await post.body?.cancel();
  const plain = await fetch(`${pair.url}ws`);
  deepStrictEqual(plain.status, 426);
  await plain.body?.cancel();
});

Deno.test("serveWeb() bridges IM lines both ways: a WebSocket user and a terminal user chat", async () => {
  await using pair = startPair();
  await using alice = await signIn(pair.webPort, "alice");
  using bob = await connectIm("127.0.0.1", pair.imPort);
  await bob.send({ command: "REGISTER", username: "bob", status: "away" });
  const bobs = bob.messages();
  deepStrictEqual(await alice.next(), 'ONLINE_USERS {"alice":"online","bob":"away"}');
  alice.send('INVITE ["bob"]');
  deepStrictEqual(await alice.next(), 'INVITATION [1,"alice"]');
  alice.send("JOIN [1]");
  alice.send("LIST_CONVERSATIONS"); // its reply proves the JOIN is done
  deepStrictEqual(await alice.next(), 'CONVERSATIONS {"1":["alice"]}');
  deepStrictEqual((await bobs.next()).value?.command, "ONLINE_USERS");
  deepStrictEqual((await bobs.next()).value, {
    command: "INVITATION",
    conversation: 1,
    inviter: "alice",
  });
  await bob.send({ command: "JOIN", conversation: 1 });
  await bob.send({ command: "SEND_MESSAGE", conversation: 1, message: "hi <b>alice</b>" });
  deepStrictEqual(await alice.next(), 'MESSAGE [1,"bob","hi <b>alice</b>"]');
  alice.send('SEND_MESSAGE [1, "hello bob"]');
  deepStrictEqual(await alice.next(), 'MESSAGE [1,"alice","hello bob"]');
  deepStrictEqual((await bobs.next()).value?.command, "MESSAGE"); // bob's own
  deepStrictEqual((await bobs.next()).value, {
    command: "MESSAGE",
    conversation: 1,
    sender: "alice",
    message: "hello bob",
  });
  // A bad line or a server command is answered by the bridge and the socket stays open.
  alice.send("SEND_MESSAGE [1");
  match(await alice.next(), /^ERROR "invalid JSON after SEND_MESSAGE/);
  alice.send('ONLINE_USERS {"x":"y"}');
  deepStrictEqual(await alice.next(), error(WEB_TEXTS.serverCommand("ONLINE_USERS")));
  alice.send("LIST_CONVERSATIONS");
  deepStrictEqual(await alice.next(), 'CONVERSATIONS {"1":["alice","bob"]}');
  // Closing the tab is a GOODBYE: alice leaves the IM server.
  await alice.close();
  deepStrictEqual((await bobs.next()).value, { command: "ONLINE_USERS", users: { bob: "away" } });
});

Deno.test("serveWeb() a taken name is an ERROR and the same socket may register another", async () => {
  await using pair = startPair();
  await using first = await signIn(pair.webPort, "alice");
  await using second = await WsPeer.open(pair.webPort);
  second.send('REGISTER ["alice","x"]');
  deepStrictEqual(await second.next(), error(IM_TEXTS.nameTaken("alice")));
  second.send('REGISTER ["alice2","x"]');
  deepStrictEqual(await second.next(), 'ONLINE_USERS {"alice":"online","alice2":"x"}');
  deepStrictEqual(await first.next(), 'ONLINE_USERS {"alice":"online","alice2":"x"}');
});

Deno.test("serveWeb() refuses WebSocket upgrades from another origin with 403", async () => {
  await using pair = startPair();
  const foreign = await rawUpgrade(pair.webPort, { Origin: "http://evil.example" });
  match(foreign.head, /^HTTP\/1\.1 403 /);
  foreign.conn.close();
  // Another port of the same host is another origin too.
  const otherPort = await rawUpgrade(pair.webPort, { Origin: "http://127.0.0.1:1" });
  match(otherPort.head, /^HTTP\/1\.1 403 /);
  otherPort.conn.close();
  // DNS rebinding: a page of another site whose name resolves to 127.0.0.1 is same-origin with
  // itself, but names another host while this server listens on loopback.
  const rebound = await rawUpgrade(pair.webPort, {
    Host: `evil.example:${pair.webPort}`,
    Origin: `http://evil.example:${pair.webPort}`,
  });
  match(rebound.head, /^HTTP\/1\.1 403 /);
  rebound.conn.close();
  const refused = new WsPeer(`ws://127.0.0.1:${pair.webPort}/ws`, {
    origin: "http://evil.example",
  });
  await refused.closedWithin();
  deepStrictEqual(pair.web.sockets(), 0);
  // The page's own origin, and a client that is no browser (no Origin), are let in.
  await using _own = await WsPeer.open(pair.webPort, {
    origin: `http://127.0.0.1:${pair.webPort}`,
  });
  await using _tool = await WsPeer.open(pair.webPort);
  deepStrictEqual(pair.web.sockets(), 2);
  // localhost is a loopback name like 127.0.0.1.
  const local = await rawUpgrade(pair.webPort, {
    Host: `localhost:${pair.webPort}`,
    Origin: `http://localhost:${pair.webPort}`,
  });
  match(local.head, /^HTTP\/1\.1 101 /);
  local.conn.close();
});

Deno.test("serveWeb() --max-per-ip: one socket too many gets the error and is closed; loopback is exempt by default", async () => {
  {
    await using pair = startPair({ maxPerIp: 2, exempt: [] });
    await using _a = await WsPeer.open(pair.webPort);
    const b = await WsPeer.open(pair.webPort);
    const c = new WsPeer(`ws://127.0.0.1:${pair.webPort}/ws`);
    deepStrictEqual(await c.next(), error(WEB_TEXTS.tooManyFromAddress));
    deepStrictEqual(await c.closedWithin(), { code: 1008, reason: WEB_TEXTS.tooManyFromAddress });
    // The refused socket never reached the IM server, and a place that frees up can be taken again.
    await b.close();
    await waitUntil(() => pair.web.sockets() === 1, 2000, "the closed socket to be counted out");
    await using _d = await signIn(pair.webPort, "dave");
    deepStrictEqual(pair.web.sockets(), 2);
  }
  {
    await using pair = startPair({ maxPerIp: 1 });
    await using _a = await WsPeer.open(pair.webPort);
    await using _b = await signIn(pair.webPort, "bob");
    deepStrictEqual(pair.web.sockets(), 2);
  }
  {
    await using pair = startPair({ maxConnections: 1 });
    await using _a = await WsPeer.open(pair.webPort);
    const b = new WsPeer(`ws://127.0.0.1:${pair.webPort}/ws`);
    deepStrictEqual(await b.next(), error(WEB_TEXTS.tooManyConnections));
    deepStrictEqual((await b.closedWithin()).code, 1008);
  }
});

Deno.test("serveWeb() a message over --max-message gets the error and closes the socket; one at the limit does not", async () => {
  await using pair = startPair({ maxMessageBytes: 1000 });
  await using alice = await signIn(pair.webPort, "alice");
  // Exactly 1000 bytes: a well-framed line (the IM server answers it) and the socket stays.
  const fits = `SEND_MESSAGE [1, "${"é".repeat(490)}"]`;
  deepStrictEqual(new TextEncoder().encode(fits).length, 1000);
  alice.send(fits);
  deepStrictEqual(await alice.next(), error(IM_TEXTS.noConversation(1)));
  alice.send(fits.replace('"]', 'x"]'));
  deepStrictEqual(await alice.next(), error(WEB_TEXTS.tooLarge(1001, 1000)));
  deepStrictEqual((await alice.closedWithin()).code, 1009);
  // The IM session ended with it.
  await waitUntil(() => !("alice" in pair.im.onlineUsers()), 2000, "alice to go offline");
});

Deno.test("serveWeb() takes a line with its LF, several lines, or UTF-8 bytes (what encodeIm() gives)", async () => {
  await using pair = startPair();
  await using alice = await WsPeer.open(pair.webPort);
  alice.socket.send(encodeIm({ command: "REGISTER", username: "alice", status: "online" }));
  deepStrictEqual(await alice.next(), 'ONLINE_USERS {"alice":"online"}');
  alice.send('INVITE ["alice"]\nLIST_CONVERSATIONS\n');
  deepStrictEqual(await alice.next(), 'INVITATION [1,"alice"]');
  match(await alice.next(), /^CONVERSATIONS /);
  alice.socket.send(new Uint8Array([0x53, 0xff, 0x0a])); // not UTF-8
  deepStrictEqual(await alice.next(), error(WEB_TEXTS.notUtf8));
  alice.send("LIST_CONVERSATIONS"); // the socket is still there
  match(await alice.next(), /^CONVERSATIONS /);
});

Deno.test("serveWeb() a browser that stops reading is dropped past --max-queue; the others go on", async () => {
  await using pair = startPair({ maxQueueBytes: 64 * 1024 });
  // The slow browser registers, starts a conversation with the flooder and then never reads.
  const slow = await rawUpgrade(pair.webPort);
  match(slow.head, /^HTTP\/1\.1 101 /);
  using flooder = await connectIm("127.0.0.1", pair.imPort);
  await flooder.send({ command: "REGISTER", username: "flood", status: "online" });
  const floods = flooder.messages();
  for (const line of ['REGISTER ["slow","online"]', 'INVITE ["flood"]', "JOIN [1]"]) {
    await writeAll(slow.conn, maskedTextFrame(line));
  }
  while ((await floods.next()).value?.command !== "INVITATION") { /* presence first */ }
  await flooder.send({ command: "JOIN", conversation: 1 });
  await waitUntil(
    () => pair.im.conversations()["1"]?.length === 2,
    2000,
    "both in conversation 1",
  );
  // The flooder reads its own copies; the slow browser reads nothing. At most 32 MiB are sent.
  const reader = (async () => {
    for await (const _ of floods) { /* drain */ }
  })();
  const chunk = "x".repeat(60_000);
  for (let i = 0; i < 540 && "slow" in pair.im.onlineUsers(); i++) {
    await flooder.send({ command: "SEND_MESSAGE", conversation: 1, message: chunk });
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1)); // let the bridge run
  }
  await waitUntil(() => !("slow" in pair.im.onlineUsers()), 5000, "the slow browser to be dropped");
  ok("flood" in pair.im.onlineUsers(), "the flooder is still there");
  // Someone else still gets through the same bridge.
  await using _other = await signIn(pair.webPort, "other");
  slow.conn.close();
  flooder.close();
  await reader;
});

Deno.test("serveWeb() the IM server going away closes the socket with the reason; an unreachable one too", async () => {
  await using pair = startPair();
  await using alice = await signIn(pair.webPort, "alice");
  await pair.im.shutdown();
  deepStrictEqual(await alice.next(), error(IM_TEXTS.shuttingDown));
  deepStrictEqual(await alice.next(), error(WEB_TEXTS.imClosed));
  deepStrictEqual(await alice.closedWithin(), { code: 1011, reason: WEB_TEXTS.imClosed });
  await using again = await WsPeer.open(pair.webPort);
  deepStrictEqual(await again.next(), error(WEB_TEXTS.imUnreachable(`127.0.0.1:${pair.imPort}`)));
  deepStrictEqual((await again.closedWithin()).code, 1013);
});

Deno.test("serveWeb() a socket that does not register within --register-timeout is closed", async () => {
  await using pair = startPair({ registerTimeoutMs: 200 });
  await using idle = await WsPeer.open(pair.webPort);
  deepStrictEqual(await idle.next(), error(WEB_TEXTS.registerTimeout));
  deepStrictEqual((await idle.closedWithin()).code, 1008);
  // A registered one stays past the timeout: a later message still arrives.
  await using alice = await signIn(pair.webPort, "alice");
  await new Promise((r) => setTimeout(r, 300)); // past the timeout on purpose
  alice.send("LIST_CONVERSATIONS");
  deepStrictEqual(await alice.next(), "CONVERSATIONS {}");
});

Deno.test("serveWeb() shutdown tells every browser and closes its IM session", async () => {
  await using pair = startPair();
  const alice = await signIn(pair.webPort, "alice");
  await pair.web.shutdown();
  deepStrictEqual(await alice.next(), error(WEB_TEXTS.shuttingDown));
  deepStrictEqual((await alice.closedWithin()).code, 1001);
  await waitUntil(() => !("alice" in pair.im.onlineUsers()), 2000, "alice to go offline");
});

Deno.test("imAddress() reads --im HOST:PORT", () => {
  deepStrictEqual(imAddress("127.0.0.1:6666"), { hostname: "127.0.0.1", port: 6666 });
  deepStrictEqual(imAddress("[::1]:7"), { hostname: "::1", port: 7 });
  deepStrictEqual(imAddress("im.example:1"), { hostname: "im.example", port: 1 });
  for (const bad of ["6666", "host:", "host:99999", ":1"]) throws(() => imAddress(bad), UsageError);
});

Deno.test("servers/web.ts runs with only --allow-net: page, WebSocket to the IM server, clean exit", async () => {
  await using pair = startPair();
  await using web = EntryProcess.start("servers/web.ts", [
    "--port",
    "0",
    "--im",
    `127.0.0.1:${pair.imPort}`,
  ], ["--allow-net"]);
  const port = await web.listeningPort();
  const page = await fetch(`http://127.0.0.1:${port}/`);
  match(await page.text(), /<title>Parley<\/title>/);
  const script = await fetch(`http://127.0.0.1:${port}/app.js`);
  match(await script.text(), /ChatModel/);
  await using alice = await signIn(port, "alice");
  ok("alice" in pair.im.onlineUsers());
  deepStrictEqual((await web.stop()).code, 0);
  deepStrictEqual(await alice.next(), error(WEB_TEXTS.shuttingDown));
});

Deno.test("servers/web.ts --help lists every flag with its default; a bad --im exits 2, a port in use 1", async () => {
  const help = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-net", "servers/web.ts", "--help"],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(help.stdout);
  for (
    const flag of [
      "--port PORT",
      "[default: 8080]",
      "--im HOST:PORT",
      "[default: 127.0.0.1:6666]",
      "--max-per-ip N",
      "--exempt",
      "--max-message BYTES",
      "--max-queue BYTES",
      "--register-timeout",
    ]
  ) ok(text.includes(flag), `${flag} in --help`);
  await using bad = EntryProcess.start("servers/web.ts", ["--im", "nope"], ["--allow-net"]);
  deepStrictEqual((await bad.exited()).code, 2);
  match(bad.output, /--im must be HOST:PORT/);
  // A port in use is one line naming the address, exit 1 (SPEC 6.7).
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  await using busy = EntryProcess.start("servers/web.ts", ["--port", String(port)], [
    "--allow-net",
  ]);
  deepStrictEqual((await busy.exited()).code, 1);
  deepStrictEqual(busy.output, `127.0.0.1:${port} is already in use\n`);
});
