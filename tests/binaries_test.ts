// The standalone binaries' permission grants (tools/binaries.ts), tested with `deno run` and exactly
// those flags; and the compiled binaries themselves where `deno compile` can get its runtime.
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { BINARIES, type Binary } from "../tools/binaries.ts";
import { encodeEurechat, EurechatDecoder, payloadText } from "../protocols/eurechat.ts";
import { CrcClient } from "../clients/crc.ts";
import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { EntryProcess, Peer, waitUntil } from "./_helpers.ts";

const binary = (name: string): Binary => BINARIES.find((b) => b.name === name)!;

/** How to start a binary: with `deno run` and its table flags, or as a compiled file. */
type Launcher = (b: Binary, args: string[], cwd: string) => EntryProcess;
const viaDenoRun: Launcher = (b, args, cwd) =>
  EntryProcess.start(b.entry, args, [...b.permissions], { cwd });

async function checkDirectory(launch: Launcher) {
  const dir = await Deno.makeTempDir();
  try {
    await using server = launch(
      binary("parley-directory"),
      ["--port", "0", "--hash-cost", "4"],
      dir,
    );
    const port = await server.listeningPort();
    await using peer = await Peer.connect(
      { transport: "tcp", hostname: "127.0.0.1", port },
      new EurechatDecoder(),
    );
    await peer.write(encodeEurechat("USER", ["alice"]));
    await peer.write(encodeEurechat("PASS", ["pw"]));
    await peer.write(encodeEurechat("QUERY"));
    deepStrictEqual((await peer.take(3)).map((m) => `${m.type} ${payloadText(m)}`), [
      "ACK hi alice, authentication required",
      "ACK successfully authenticated",
      "RESULT ",
    ]);
    ok(
      (await Deno.stat(`${dir}/parley-directory.db`)).isFile,
      "the database lives in the data location",
    );
    await peer.close();
    deepStrictEqual((await server.stop()).code, 0);

    // Outside its data location it stops with a clear permission error.
    await using elsewhere = launch(binary("parley-directory"), [
      "--port",
      "0",
      "--db",
      `${dir}/../elsewhere.db`,
    ], dir);
    deepStrictEqual((await elsewhere.exited()).code, 1);
    match(elsewhere.output, /NotCapable: Requires read access to ".*elsewhere\.db"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function checkCrcNode(launch: Launcher) {
  const dir = await Deno.makeTempDir();
  try {
    await using node = launch(binary("parley-crc-node"), ["--id", "1", "--port", "0"], dir);
    const port = await node.listeningPort();
    await using alice = await CrcClient.connect({ id: 7, username: "alice", port });
    await waitUntil(() => alice.statusLog.length === 1, 5000, "welcome");
    deepStrictEqual(alice.statusLog[0].text, "Welcome to the Clemson Relay Chat network alice");
    deepStrictEqual((await node.stop()).code, 0);

    // Writing a log file is outside its grant: refused with a logged error, and the node runs on.
    const args = ["--port", "0", "--log-file", "node.log"];
    await using logging = launch(binary("parley-crc-node"), args, dir);
    await logging.listeningPort();
    match(
      logging.output,
      /Cannot write the log file node\.log.*NotCapable: Requires write access to .*node\.log/,
    );
    deepStrictEqual((await logging.stop()).code, 0);
    deepStrictEqual([...Deno.readDirSync(dir)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function checkChannelServer(launch: Launcher) {
  const dir = await Deno.makeTempDir();
  try {
    await using server = launch(binary("parley-channel-server"), ["0"], dir);
    const port = await server.listeningPort();
    const addr = { transport: "tcp" as const, hostname: "127.0.0.1", port };
    await using a = await Peer.connect(addr, new ChannelDecoder());
    await using b = await Peer.connect(addr, new ChannelDecoder());
    await a.write(
      new Uint8Array([
        ...encodeChannelFrame("A"),
        ...encodeChannelFrame("/create r"),
        ...encodeChannelFrame("/list"),
      ]),
    );
    deepStrictEqual(await a.next(), "r");
    await b.write(
      new Uint8Array([
        ...encodeChannelFrame("B"),
        ...encodeChannelFrame("/join r"),
        ...encodeChannelFrame("hi"),
      ]),
    );
    deepStrictEqual(await a.take(2), ["B has joined", "[B] hi"]);
    await a.close();
    await b.close();
    deepStrictEqual((await server.stop()).code, 0);

    // Every interface is granted; an address outside the grant is refused.
    await using wide = launch(
      binary("parley-channel-server"),
      ["--host", "0.0.0.0", "--port", "0"],
      dir,
    );
    await wide.listeningPort();
    deepStrictEqual((await wide.stop()).code, 0);
    for (const host of ["127.0.0.2", "::1"]) {
      await using refused = launch(
        binary("parley-channel-server"),
        ["--host", host, "--port", "0"],
        dir,
      );
      deepStrictEqual((await refused.exited()).code, 1);
      match(refused.output, /NotCapable: Requires net access to/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("BINARIES grants no env, run, ffi, sys or unscoped read/write, and never prompts", () => {
  deepStrictEqual(BINARIES.map((b) => b.name), [
    "parley-directory",
    "parley-crc-node",
    "parley-channel-server",
  ]);
  for (const b of BINARIES) {
    ok(b.permissions.includes("--no-prompt"), b.name);
    for (const flag of b.permissions) {
      ok(!/^--allow-(env|run|ffi|sys|all)|^-A$/.test(flag), `${b.name}: ${flag}`);
      ok(!/^--allow-(read|write)$/.test(flag), `${b.name}: unscoped ${flag}`);
    }
  }
  deepStrictEqual(binary("parley-crc-node").permissions, ["--no-prompt", "--allow-net"]);
  deepStrictEqual(binary("parley-channel-server").permissions, [
    "--no-prompt",
    "--allow-net=127.0.0.1,0.0.0.0",
  ]);
});

Deno.test("parley-directory's grant (deno run): serves eurechat, keeps its database in its data location, refuses others", () =>
  checkDirectory(viaDenoRun));
Deno.test("parley-crc-node's grant (deno run): serves CRC; a log file is refused and logged, the node runs on", () =>
  checkCrcNode(viaDenoRun));
Deno.test("parley-channel-server's grant (deno run): serves channels on 127.0.0.1 and 0.0.0.0 only", () =>
  checkChannelServer(viaDenoRun));

// The compiled path needs deno compile's runtime: DENORT_BIN, since this machine cannot download it.
const denort = Deno.env.get("DENORT_BIN");
const compileSkip = denort
  ? undefined
  : "DENORT_BIN is not set and denort cannot be downloaded here";
if (compileSkip) console.warn(`binaries_test: compiled-binary tests SKIPPED: ${compileSkip}`);

Deno.test({
  name:
    "compiled binaries: deno task compile builds all three with checksums; each answers --version and --help and serves",
  ignore: compileSkip !== undefined,
  sanitizeResources: false,
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const root = new URL("..", import.meta.url).pathname;
      const built = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "tools/compile.ts",
          "--out",
          out,
        ],
        cwd: root,
      }).output();
      ok(built.success, new TextDecoder().decode(built.stderr));
      const sums = await Deno.readTextFile(`${out}/SHA256SUMS`);
      for (const b of BINARIES) match(sums, new RegExp(`^[0-9a-f]{64}  ${b.name}$`, "m"));
      const compiled: Launcher = (b, args, cwd) =>
        EntryProcess.spawn(`${out}/${b.name}`, args, { cwd });
      for (const b of BINARIES) {
        await using version = compiled(b, ["--version"], out);
        deepStrictEqual((await version.exited()).code, 0);
        match(version.output, /^parley \d+\.\d+\.\d+/);
        await using help = compiled(b, ["--help"], out);
        deepStrictEqual((await help.exited()).code, 0);
        match(help.output, /Usage: /);
      }
      await checkDirectory(compiled);
      await checkCrcNode(compiled);
      await checkChannelServer(compiled);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

Deno.test("deno task compile: a DENORT_BIN that is not a file is one clear error, and no output folder is left", async () => {
  const parent = await Deno.makeTempDir();
  try {
    const root = new URL("..", import.meta.url).pathname;
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-run", "--allow-read", "--allow-write", "--allow-env"]
        .concat(["tools/compile.ts", "--out", `${parent}/dist`]),
      cwd: root,
      env: { DENORT_BIN: `${parent}/no-such-denort`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    deepStrictEqual(result.code, 1);
    deepStrictEqual(
      new TextDecoder().decode(result.stderr),
      `DENORT_BIN is set to ${parent}/no-such-denort, which is not a file. Give the path of denort.\n`,
    );
    deepStrictEqual(await Deno.stat(`${parent}/dist`).then(() => true, () => false), false);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});
