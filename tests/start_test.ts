import { deepStrictEqual, match, ok } from "node:assert/strict";
import { startAll } from "../start.ts";
import { connectTimestamp } from "../clients/timestamp.ts";
import { connectChannel } from "../clients/channel.ts";
import { DirectoryClient } from "../clients/eurechat.ts";
import { connectIm } from "../clients/im.ts";
import { CrcClient } from "../clients/crc.ts";
import { EntryProcess, portOf, waitUntil } from "./_helpers.ts";
import { formatAddr } from "../net/address.ts";

Deno.test("startAll() runs every server at once, each reachable with its client", async () => {
  const dir = await Deno.makeTempDir();
  const started = await startAll({
    anyPort: true,
    timestampPath: `${dir}/ts.sock`,
    directoryDb: ":memory:",
  });
  try {
    const by = (name: string) => started.find((s) => s.name === name)!;
    deepStrictEqual(started.map((s) => s.name), [
      "timestamp (tcp)",
      "timestamp (udp)",
      "timestamp (unix)",
      "eurechat directory",
      "IM conversations",
      "web client (IM)",
      "CRC node",
      "channel chat",
    ]);
    for (const transport of ["tcp", "udp", "unix"] as const) {
      const s = by(`timestamp (${transport})`);
      using c = await connectTimestamp({
        transport,
        port: transport === "unix" ? undefined : portOf(s.server.addr),
        path: `${dir}/ts.sock`,
      });
      match(await c.request("hello"), /^\[.+\] hello$/);
    }
    await using d = await DirectoryClient.connect(
      "127.0.0.1",
      portOf(by("eurechat directory").server.addr),
    );
    await d.request("USER", ["x"]);
    using im = await connectIm("127.0.0.1", portOf(by("IM conversations").server.addr));
    await im.send({ command: "REGISTER", username: "x", status: "s" });
    deepStrictEqual((await im.messages().next()).value, {
      command: "ONLINE_USERS",
      users: { x: "s" },
    });
    await using crc = await CrcClient.connect({
      id: 5,
      username: "x",
      port: portOf(by("CRC node").server.addr),
    });
    await waitUntil(() => crc.statusLog.length === 1, 2000, "welcome");
    using ch = await connectChannel("x", "127.0.0.1", portOf(by("channel chat").server.addr));
    await ch.send("/list");
    deepStrictEqual((await ch.messages().next()).value, "");
    const page = await fetch(`http://${formatAddr(by("web client (IM)").server.addr)}/`);
    match(await page.text(), /<title>Parley<\/title>/);
  } finally {
    await Promise.all(started.map((s) => s.server.shutdown()));
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startAll() stops what it started when one server cannot start (the sanitizers check nothing leaks)", async () => {
  // The Unix socket lives in a directory that does not exist: TCP and UDP start first, then this fails.
  const error = await startAll({
    anyPort: true,
    timestampPath: "/nonexistent-parley-dir/ts.sock",
    directoryDb: ":memory:",
  })
    .catch((e) => e);
  ok(error instanceof Deno.errors.NotFound, String(error));
});

/** What to type into each printed client command, and what it must then show. */
const SESSIONS: Record<string, { input: string; expect: RegExp }> = {
  "timestamp (tcp)": { input: "hello\n\n", expect: /\] hello\n/ },
  "timestamp (udp)": { input: "hello\n\n", expect: /\] hello\n/ },
  "timestamp (unix)": { input: "hello\n\n", expect: /\] hello\n/ },
  "eurechat directory": { input: "pw\n/who\n/quit\n", expect: /tester 127\.0\.0\.1,?:?\d+/ },
  "IM conversations": { input: "", expect: /Online: tester \(/ },
  "CRC node": { input: "", expect: /Welcome to the Clemson Relay Chat network tester/ },
  "channel chat": { input: "/create room\n/list\n", expect: /room/ },
};

Deno.test("startAll() prints, for every server, a client command that really talks to it", async () => {
  const dir = await Deno.makeTempDir();
  const started = await startAll({
    anyPort: true,
    timestampPath: `${dir}/ts.sock`,
    directoryDb: ":memory:",
  });
  try {
    for (const { name, client } of started) {
      const page = /^open (http:\/\/\S+) in a browser$/.exec(client);
      if (page) {
        // The web client is a page: what the printed address serves is the chat page.
        match(await (await fetch(page[1])).text(), /<title>Parley<\/title>/, name);
        continue;
      }
      const session = SESSIONS[name];
      ok(session, `no session for ${name}`);
      const words = client.replaceAll("NAME", "tester").split(" ");
      deepStrictEqual(words.slice(0, 2), ["deno", "run"], client);
      const script = words.findIndex((w) => w.startsWith("clients/"));
      const child = EntryProcess.start(
        words[script],
        words.slice(script + 1),
        words.slice(2, script),
        { stdin: true },
      );
      await child.type(session.input);
      await child.waitFor(session.expect).catch(async (error) => {
        await child.stop();
        throw new Error(`${name}: ${client}\n${error}`);
      });
      await child.closeStdin();
      await child.stop();
    }
  } finally {
    await Promise.all(started.map((s) => s.server.shutdown()));
    await Deno.remove(dir, { recursive: true });
  }
});
