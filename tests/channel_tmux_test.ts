// deno-lint-ignore-file no-control-regex
// The real channel client and server together, driven as a person would: tmux runs the clients,
// we type with send-keys and read the screen with capture-pane. Skipped (and said so) without tmux.
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { EntryProcess, hasTmux, Peer, Tmux, waitUntil } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("channel_tmux_test: SKIPPED, tmux is not installed");

const STAMP = /^\d\d:\d\d /;

Deno.test({
  name: "clients/channel.ts under tmux: messages overwrite the [Me] prompt on screen",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/channel.ts", ["--port", "0"], ["--allow-net"]);
    const port = String(await server.listeningPort());
    await using tmux = new Tmux();
    const args = (name: string) => [name, "127.0.0.1", port, "--no-timestamps"];
    await tmux.start("alice", "clients/channel.ts", args("Alice"), ["--allow-net"]);
    await tmux.start("kay", "clients/channel.ts", args("Kay"), ["--allow-net"]);
    await tmux.waitForLine("alice", "[Me]");
    await tmux.waitForLine("kay", "[Me]");
    await tmux.type("alice", "/create tas");
    await tmux.type("alice", "/list"); // its answer proves the server has the channel
    await tmux.waitForLine("alice", "tas");
    await tmux.type("kay", "/join tas");
    await tmux.waitForLine("alice", "Kay has joined");
    await tmux.type("kay", "Hi!");
    await tmux.waitForLine("alice", "[Kay] Hi!");
    await tmux.type("alice", "Hello!");
    await tmux.waitForLine("kay", "[Alice] Hello!");
    // Each message replaced the prompt line it arrived on; a fresh prompt follows it.
    deepStrictEqual(await tmux.screen("alice"), [
      "[Me] /create tas",
      "[Me] /list",
      "tas",
      "Kay has joined",
      "[Kay] Hi!",
      "[Me] Hello!",
      "[Me]",
    ]);
    deepStrictEqual(await tmux.screen("kay"), [
      "[Me] /join tas",
      "[Me] Hi!",
      "[Alice] Hello!",
      "[Me]",
    ]);
  },
});

Deno.test({
  name:
    "clients/channel.ts under tmux: line editing, history, a message arriving mid-line, timestamps, colours, /help, Ctrl+D",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/channel.ts", ["--port", "0"], ["--allow-net"]);
    const port = await server.listeningPort();
    await using kay = await Peer.connect(
      { transport: "tcp", hostname: "127.0.0.1", port },
      new ChannelDecoder(),
    );
    await kay.write(encodeChannelFrame("Kay"));
    await kay.write(encodeChannelFrame("/create tas"));
    await kay.write(encodeChannelFrame("/list"));
    deepStrictEqual(await kay.next(), "tas");
    await using tmux = new Tmux();
    await tmux.start("alice", "clients/channel.ts", ["Alice", "127.0.0.1", String(port)], [
      "--allow-net",
    ], { env: { NO_COLOR: "" } });
    await tmux.waitForLine("alice", "[Me]");
    await tmux.type("alice", "/join tas");
    deepStrictEqual(await kay.next(), "Alice has joined");
    const said = async (text: string) => deepStrictEqual(await kay.next(), `[Alice] ${text}`);

    await tmux.typeText("alice", "hello wrld");
    await tmux.keys("alice", "Left", "Left", "Left");
    await tmux.typeText("alice", "o");
    await tmux.keys("alice", "Enter");
    await said("hello world");
    await tmux.keys("alice", "Up", "C-a");
    await tmux.typeText("alice", "X");
    await tmux.keys("alice", "End", "BSpace", "Enter");
    await said("Xhello worl");
    await tmux.keys("alice", "Up", "Up", "Down", "Enter"); // Up twice, back down once: the newest
    await said("Xhello worl");
    await tmux.typeText("alice", "junk");
    await tmux.keys("alice", "C-u");
    await tmux.typeText("alice", "one two");
    await tmux.keys("alice", "C-w");
    await tmux.typeText("alice", "three");
    await tmux.keys("alice", "Home", "Right", "DC", "C-e", "Enter");
    await said("oe three");

    // A message arrives while half a line is typed: it goes above, the half line stays.
    await tmux.typeText("alice", "half typed");
    await tmux.keys("alice", "Left", "Left");
    await tmux.waitForLine("alice", "[Me] half typed");
    await kay.write(encodeChannelFrame("incoming"));
    const screen = await tmux.waitForLine("alice", /^\d\d:\d\d \[Kay\] incoming$/);
    deepStrictEqual(screen.at(-1), "[Me] half typed");
    deepStrictEqual(await tmux.cursor("alice"), { x: 13, y: screen.length - 1 });
    match(await tmux.styledScreen("alice"), /\x1b\[[0-9;]*36m/); // a name in colour
    await tmux.keys("alice", "End");
    await tmux.typeText("alice", " more");
    await tmux.keys("alice", "Enter");
    await said("half typed more");

    await tmux.type("alice", "/help");
    await tmux.waitForLine("alice", /^\/create NAME\s+create a channel and join it$/);
    await tmux.type("alice", "/frobnicate");
    await tmux.waitForLine("alice", "Unknown command /frobnicate: type /help for the commands");
    await tmux.typeText("alice", "kept");
    await tmux.keys("alice", "C-l");
    await waitUntil(
      async () => (await tmux.screen("alice")).join("|") === "[Me] kept",
      5000,
      "Ctrl+L to redraw only the input line",
    );
    await tmux.keys("alice", "C-u", "C-d");
    deepStrictEqual(await tmux.exitCode("alice"), 0);
    deepStrictEqual(await kay.next(), "Alice has left");
    ok((await tmux.screen("alice")).every((l) => !STAMP.test(l) || l.includes("incoming")));
  },
});

Deno.test({
  name:
    "clients/channel.ts under tmux: NO_COLOR and --color never turn colours off; --no-timestamps",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/channel.ts", ["--port", "0"], ["--allow-net"]);
    const port = await server.listeningPort();
    await using kay = await Peer.connect(
      { transport: "tcp", hostname: "127.0.0.1", port },
      new ChannelDecoder(),
    );
    await kay.write(encodeChannelFrame("Kay"));
    await kay.write(encodeChannelFrame("/create tas"));
    await using tmux = new Tmux();
    const start = (name: string, extra: string[], env: Record<string, string>) =>
      tmux.start(name, "clients/channel.ts", [name, "127.0.0.1", String(port), ...extra], [
        "--allow-net",
      ], { env });
    await start("env", [], { NO_COLOR: "1" });
    await start("flag", ["--color", "never", "--no-timestamps"], { NO_COLOR: "" });
    await start("forced", ["--color", "always"], { NO_COLOR: "1" });
    for (const name of ["env", "flag", "forced"]) {
      await tmux.waitForLine(name, "[Me]");
      await tmux.type(name, "/join tas");
      deepStrictEqual(await kay.next(), `${name} has joined`); // the server has it
    }
    await kay.write(encodeChannelFrame("colour check"));
    await tmux.waitForLine("env", /^\d\d:\d\d \[Kay\] colour check$/);
    await tmux.waitForLine("flag", "[Kay] colour check");
    await tmux.waitForLine("forced", /^\d\d:\d\d \[Kay\] colour check$/);
    const colours = /\x1b\[[0-9;]*3\dm/;
    ok(!colours.test(await tmux.styledScreen("env")), "NO_COLOR set: no colours");
    ok(!colours.test(await tmux.styledScreen("flag")), "--color never: no colours");
    match(await tmux.styledScreen("forced"), colours);
  },
});
