// SPEC 7.2 from processes with piped stdin: exit code 0 when the user quits, 1 when the connection
// fails or the server closes it (one line saying so), 2 for bad flags; the identity rules.
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { serveCrcNode } from "../servers/crc_node.ts";
import { serveIm } from "../servers/im.ts";
import { serveDirectory } from "../servers/directory.ts";
import { DirectoryClient } from "../clients/eurechat.ts";
import { encodeEurechat } from "../protocols/eurechat.ts";
import { encodeIm } from "../protocols/im.ts";
import { writeAll } from "../net/bytes.ts";
import { CrcClient } from "../clients/crc.ts";
import { connectIm } from "../clients/im.ts";
import { EntryProcess, portOf } from "./_helpers.ts";

const CLIENTS = [
  "clients/timestamp.ts",
  "clients/channel.ts",
  "clients/im.ts",
  "clients/crc.ts",
  "clients/eurechat.ts",
];

async function run(script: string, args: string[]) {
  await using p = EntryProcess.start(script, args, ["--allow-net"]);
  const { code } = await p.exited();
  return { code, output: p.output };
}

Deno.test("every client: an unknown flag is 'Unknown option' with the usage, quotes balanced, exit 2", async () => {
  for (const script of CLIENTS) {
    const { code, output } = await run(script, ["--bogus"]);
    deepStrictEqual(code, 2, script);
    match(output, /Unknown option '--bogus'\n/, script);
    match(output, new RegExp(`Usage: ${script.replace(".", "\\.")} `), script);
    ok((output.split("\n")[0].match(/'/g) ?? []).length % 2 === 0, `unbalanced quote: ${output}`);
    ok(!output.includes("positional argument"), output);
  }
});

Deno.test("every client: a colour choice that does not exist is exit 2", async () => {
  const { code, output } = await run("clients/im.ts", ["--user", "a", "--color", "sometimes"]);
  deepStrictEqual(code, 2);
  match(output, /--color must be one of auto, always, never, got 'sometimes'/);
});

Deno.test("clients: --port -1 says what is wrong with it, with the usage; the channel client names PORT, not --port", async () => {
  for (const [script, args] of [["clients/timestamp.ts", []], ["clients/im.ts", ["--user", "a"]]]) {
    const { code, output } = await run(script as string, [...args, "--port", "-1"]);
    deepStrictEqual(code, 2, output);
    match(output, /--port must be a port number from 0 to 65535, got '-1'\nUsage: /, output);
    ok(!output.includes("ambiguous"), output);
  }
  const crc = await run("clients/crc.ts", ["--username", "a", "--serverport", "-1"]);
  deepStrictEqual(crc.code, 2);
  match(crc.output, /--serverport must be a port number from 0 to 65535, got '-1'/);
  const channel = await run("clients/channel.ts", ["a", "127.0.0.1", "99999"]);
  deepStrictEqual(channel.code, 2);
  match(channel.output, /PORT must be a port number from 0 to 65535, got '99999'\nUsage: /);
  ok(!channel.output.includes("--port"), channel.output);
  const missing = await run("clients/im.ts", ["--user"]);
  deepStrictEqual(missing.code, 2);
  match(missing.output, /Option '--user' needs a value\nUsage: /);
});

Deno.test("clients/im.ts: a taken name with piped stdin exits 1 saying so; the server closing is exit 1", async () => {
  await using server = serveIm({ port: 0, presenceIntervalMs: 0 });
  const port = String(portOf(server.addr));
  using holder = await connectIm("127.0.0.1", portOf(server.addr));
  await holder.send({ command: "REGISTER", username: "ann", status: "online" });
  const first = await holder.messages().next();
  deepStrictEqual(first.value?.command, "ONLINE_USERS");
  await using taken = EntryProcess.start("clients/im.ts", ["--user", "ann", "--port", port], [
    "--allow-net",
  ], { stdin: true });
  deepStrictEqual((await taken.exited()).code, 1);
  deepStrictEqual(taken.output, "Cannot register as ann: username ann is already taken\n");

  await using bob = EntryProcess.start("clients/im.ts", ["--user", "bob", "--port", port], [
    "--allow-net",
  ], { stdin: true });
  await bob.waitFor(/Online: ann \(online\), bob \(online\)\n/);
  await server.shutdown();
  deepStrictEqual((await bob.exited()).code, 1);
  match(bob.output, new RegExp(`Server at 127\\.0\\.0\\.1:${port} has disconnected\n$`));
});

Deno.test("clients/crc.ts: a taken id exits 1 with a hint; the node going away is exit 1; end of input is 0", async () => {
  const node = await serveCrcNode({ id: 1, port: 0 });
  const port = String(portOf(node.addr));
  await using holder = await CrcClient.connect({
    id: 42,
    username: "holder",
    port: portOf(node.addr),
  });
  const start = (id: string) =>
    EntryProcess.start("clients/crc.ts", ["--id", id, "--username", "x", "--serverport", port], [
      "--allow-net",
    ], { stdin: true });
  await using taken = start("42");
  deepStrictEqual((await taken.exited()).code, 1);
  deepStrictEqual(
    taken.output,
    "Someone has already registered with ID 42; use another --id, or none for a random one\n",
  );
  await using quitter = start("43");
  await quitter.waitFor(/Welcome/);
  await quitter.closeStdin();
  deepStrictEqual((await quitter.exited()).code, 0);
  await using left = start("44");
  await left.waitFor(/Welcome/);
  await node.shutdown();
  deepStrictEqual((await left.exited()).code, 1);
  match(left.output, new RegExp(`Server at 127\\.0\\.0\\.1:${port} has disconnected\n$`));
  holder.close();
});

Deno.test("clients/timestamp.ts (TCP, piped stdin) notices a dead server at once, without a line typed", async () => {
  await using server = EntryProcess.start("servers/timestamp.ts", ["--port", "0"], [
    "--allow-net",
  ]);
  const port = await server.listeningPort();
  await using client = EntryProcess.start("clients/timestamp.ts", ["--port", String(port)], [
    "--allow-net",
  ], { stdin: true });
  await client.type("hi\n");
  await client.waitFor(/\] hi\n> $/);
  deepStrictEqual((await server.stop("SIGINT")).code, 0);
  deepStrictEqual((await client.exited()).code, 1);
  match(client.output, new RegExp(`> Server at 127\\.0\\.0\\.1:${port} has disconnected\n$`));
});

Deno.test("clients: a server that is not there is exit 1 with one line", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(portOf(probe.addr));
  probe.close();
  const cases: [string, string[], RegExp][] = [
    ["clients/timestamp.ts", ["--port", port], /^Unable to connect to 127\.0\.0\.1:\d+: .+\n$/],
    ["clients/im.ts", ["--user", "a", "--port", port], /^Unable to connect to 127\.0\.0\.1:\d+\n$/],
    [
      "clients/crc.ts",
      ["--username", "a", "--serverport", port],
      /^Unable to connect to 127\.0\.0\.1:\d+\n$/,
    ],
    [
      "clients/eurechat.ts",
      ["--user", "a", "--password", "p", "--directory-port", port],
      /^Unable to connect to the directory at 127\.0\.0\.1:\d+: .+\n$/,
    ],
  ];
  for (const [script, args, pattern] of cases) {
    const { code, output } = await run(script, args);
    deepStrictEqual(code, 1, script);
    match(output, pattern, script);
  }
});

Deno.test("clients/eurechat.ts: a second login of the same name ends the first with exit 1 and the directory's reason", async () => {
  await using directory = serveDirectory({
    port: 0,
    db: ":memory:",
    hashCost: 4,
    livenessIntervalMs: 0,
  });
  const port = String(portOf(directory.addr));
  await using alice = EntryProcess.start(
    "clients/eurechat.ts",
    [
      "--user",
      "alice",
      "--password",
      "pw",
      "--directory-port",
      port,
      "--keepalive",
      "0.05",
    ],
    ["--allow-net"],
    { stdin: true },
  );
  await alice.waitFor(/Logged in as alice/);
  await using again = await DirectoryClient.connect("127.0.0.1", portOf(directory.addr));
  await again.login("alice", "pw");
  deepStrictEqual((await alice.exited()).code, 1);
  match(
    alice.output,
    new RegExp(
      `The directory at 127\\.0\\.0\\.1:${port} closed the session: logged in from another session\n$`,
    ),
  );
});

/** A server that answers the first bytes it gets with `reply` and then waits. */
function answering(reply: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = (async () => {
    const conn = await listener.accept();
    await conn.read(new Uint8Array(1024));
    await writeAll(conn, reply);
    await conn.read(new Uint8Array(1024)).catch(() => null); // until the client closes
    conn.close();
  })();
  return { port: portOf(listener.addr), done: served.finally(() => listener.close()) };
}

Deno.test("connectIm() and DirectoryClient accept what a server may send at its caps (lines and payloads up to 1 MiB)", async () => {
  const users: Record<string, string> = {};
  for (let i = 0; i < 9000; i++) users[`user${i}`.padEnd(32, "x")] = "s".repeat(64);
  const line = encodeIm({ command: "ONLINE_USERS", users });
  ok(line.length > 900_000 && line.length < 1024 * 1024, String(line.length));
  const im = answering(line);
  {
    using client = await connectIm("127.0.0.1", im.port);
    await client.send({ command: "REGISTER", username: "me", status: "" });
    const first = await client.messages().next();
    deepStrictEqual(Object.keys((first.value as { users: object }).users).length, 9000);
  }
  await im.done;
  const entries = Array.from(
    { length: 20_000 },
    (_, i) => `peer${i},127.0.0.1,${2000 + i % 60000}`,
  );
  const result = entries.join("\n");
  ok(result.length > 65536 * 4, String(result.length));
  const dir = answering(encodeEurechat("RESULT", [], result));
  {
    await using client = await DirectoryClient.connect("127.0.0.1", dir.port);
    deepStrictEqual((await client.query()).length, 20_000);
  }
  await dir.done;
});
