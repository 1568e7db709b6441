import { deepStrictEqual, match, ok } from "node:assert/strict";
import { startAll } from "../start.ts";
import { connectTimestamp } from "../clients/timestamp.ts";
import { connectChannel } from "../clients/channel.ts";
import { DirectoryClient } from "../clients/eurechat.ts";
import { connectIm } from "../clients/im.ts";
import { CrcClient } from "../clients/crc.ts";
import { portOf, waitUntil } from "./_helpers.ts";
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
    for (const s of started) match(s.client, /^deno run |^open http:\/\/[\d.:]+\/ in a browser$/);
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
