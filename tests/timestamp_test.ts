import { deepStrictEqual, match, ok } from "node:assert/strict";
import {
  encodeTimestampReply,
  formatCtime,
  TIMESTAMP_REPLY_PATTERN,
} from "../protocols/timestamp.ts";
import { serveTimestamp } from "../servers/timestamp.ts";
import { connectTimestamp, runTimestampPrompt } from "../clients/timestamp.ts";
import { EntryProcess, portOf, typedInput } from "./_helpers.ts";
import { bufferScreen, ClientConsole } from "../cli/console.ts";

const fixed = () => new Date(2017, 10, 7, 10, 0, 0);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("formatCtime() matches C's ctime layout, day padded with a space", () => {
  deepStrictEqual(formatCtime(new Date(2017, 10, 7, 10, 0, 0)), "Tue Nov  7 10:00:00 2017");
  deepStrictEqual(formatCtime(new Date(2024, 0, 31, 9, 5, 3)), "Wed Jan 31 09:05:03 2024");
});

Deno.test("encodeTimestampReply() puts the ctime in brackets before the data", () => {
  const reply = text(encodeTimestampReply(new TextEncoder().encode("hello\n"), fixed()));
  deepStrictEqual(reply, "[Tue Nov  7 10:00:00 2017] hello\n");
  match(reply, TIMESTAMP_REPLY_PATTERN);
});

for (const transport of ["tcp", "udp", "unix"] as const) {
  Deno.test(`serveTimestamp() answers over ${transport}`, async () => {
    const path = transport === "unix" ? `${await Deno.makeTempDir()}/ts.sock` : undefined;
    await using server = await serveTimestamp({ transport, port: 0, path, clock: fixed });
    const port = transport === "unix" ? undefined : portOf(server.addr);
    using client = await connectTimestamp({ transport, port, path });
    deepStrictEqual(await client.request("hello"), "[Tue Nov  7 10:00:00 2017] hello");
    deepStrictEqual(await client.request("again"), "[Tue Nov  7 10:00:00 2017] again");
    if (path) await Deno.remove(path.replace(/\/ts\.sock$/, ""), { recursive: true });
  });
}

Deno.test("runTimestampPrompt() shows '> ', prints replies and stops at an empty line", async () => {
  await using server = await serveTimestamp({ port: 0, clock: fixed });
  using client = await connectTimestamp({ port: portOf(server.addr) });
  function* typed() {
    yield "one";
    yield "two";
    yield "";
    yield "never sent";
  }
  const output = bufferScreen();
  const out = new ClientConsole({
    interactive: false,
    input: typedInput(typed()),
    output,
    plain: { prompt: "> " },
  });
  deepStrictEqual(await runTimestampPrompt(client, out), { kind: "quit" });
  const screen = output.text;
  deepStrictEqual(
    screen,
    "> [Tue Nov  7 10:00:00 2017] one\n> [Tue Nov  7 10:00:00 2017] two\n> ",
  );
});

Deno.test("servers/timestamp.ts and clients/timestamp.ts work end to end as processes", async () => {
  await using server = EntryProcess.start("servers/timestamp.ts", ["--port", "0"], ["--allow-net"]);
  const port = await server.listeningPort();
  await using client = EntryProcess.start("clients/timestamp.ts", ["--port", String(port)], [
    "--allow-net",
  ], {
    stdin: true,
  });
  await client.type("hello\n");
  await client.waitFor(/\] hello\n> /);
  await client.type("\n");
  const status = await client.exited();
  deepStrictEqual(status.code, 0);
  match(
    client.output,
    /^> \[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\] hello\n> $/,
  );
  const stopped = await server.stop("SIGINT");
  deepStrictEqual(stopped.code, 0);
});

Deno.test("servers/timestamp.ts serves UDP with --unstable-net and a Unix socket with read/write", async () => {
  await using udp = EntryProcess.start(
    "servers/timestamp.ts",
    ["--transport", "udp", "--port", "0"],
    ["--allow-net", "--unstable-net"],
  );
  const port = await udp.listeningPort();
  using udpClient = await connectTimestamp({ transport: "udp", port });
  match(await udpClient.request("hello"), /^\[.+\] hello$/);

  const dir = await Deno.makeTempDir();
  const path = `${dir}/ts.sock`;
  await using unix = EntryProcess.start(
    "servers/timestamp.ts",
    ["--transport", "unix", "--path", path],
    ["--allow-net", "--allow-read", "--allow-write"],
  );
  await unix.waitFor(/Listening on/);
  using unixClient = await connectTimestamp({ transport: "unix", path });
  match(await unixClient.request("hello"), /^\[.+\] hello$/);
  unixClient.close();
  deepStrictEqual((await unix.stop()).code, 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("servers/timestamp.ts refuses an unknown flag or bad value with exit code 2 and explains --help", async () => {
  await using bad = EntryProcess.start("servers/timestamp.ts", ["--bogus"], ["--allow-net"]);
  deepStrictEqual((await bad.exited()).code, 2);
  match(bad.output, /Unknown option '--bogus'/);
  await using badPort = EntryProcess.start("servers/timestamp.ts", ["--port", "70000"], [
    "--allow-net",
  ]);
  deepStrictEqual((await badPort.exited()).code, 2);
  match(badPort.output, /--port must be a port number/);
  await using help = EntryProcess.start("servers/timestamp.ts", ["--help"], ["--allow-net"]);
  deepStrictEqual((await help.exited()).code, 0);
  match(help.output, /Usage: servers\/timestamp\.ts/);
  ok(help.output.includes("--transport"));
});

Deno.test("clients/timestamp.ts over UDP says so when no server answers", async () => {
  const probe = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close(); // nothing listens there now
  await using client = EntryProcess.start(
    "clients/timestamp.ts",
    ["--transport", "udp", "--port", String(port)],
    ["--allow-net", "--unstable-net"],
    { stdin: true },
  );
  await client.type("hello?\n");
  deepStrictEqual((await client.exited(15000)).code, 1);
  match(client.output, new RegExp(`\n?No reply from 127\\.0\\.0\\.1:${port} within 5 s\n$`));
  ok(!client.output.includes("^J"), client.output);
});

for (const host of ["127.0.0.1", "::1"]) {
  Deno.test(`clients/timestamp.ts over UDP to ${host}: replies, and an empty line quits with exit 0`, async () => {
    await using server = EntryProcess.start(
      "servers/timestamp.ts",
      ["--transport", "udp", "--host", host, "--port", "0"],
      ["--allow-net", "--unstable-net"],
    );
    const port = await server.listeningPort();
    await using client = EntryProcess.start(
      "clients/timestamp.ts",
      ["--transport", "udp", "--host", host, "--port", String(port)],
      ["--allow-net", "--unstable-net"],
      { stdin: true },
    );
    await client.type("hello\n");
    await client.waitFor(/\] hello\n/);
    await client.type("\n");
    deepStrictEqual((await client.exited()).code, 0, client.output);
    match(client.output, /^> \[.+\] hello\n> $/);
  });
}
