// The real channel client and server together, driven as a person would: tmux runs the clients,
// we type with send-keys and read the screen with capture-pane. Skipped (and said so) without tmux.
import { deepStrictEqual } from "node:assert/strict";
import { EntryProcess, hasTmux, Tmux, waitUntil } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("channel_tmux_test: SKIPPED, tmux is not installed");

Deno.test({
  name: "clients/channel.ts under tmux: messages overwrite the [Me] prompt on screen",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/channel.ts", ["--port", "0"], ["--allow-net"]);
    const port = String(await server.listeningPort());
    await using tmux = new Tmux();
    await tmux.start("alice", "clients/channel.ts", ["Alice", "127.0.0.1", port], ["--allow-net"]);
    await tmux.start("kay", "clients/channel.ts", ["Kay", "127.0.0.1", port], ["--allow-net"]);
    await tmux.waitForLine("alice", "[Me]");
    await tmux.waitForLine("kay", "[Me]");
    await tmux.type("alice", "/create tas");
    await waitUntil(
      async () => (await tmux.screen("alice")).length === 2,
      5000,
      "alice's new prompt",
    );
    await tmux.type("kay", "/join tas");
    await tmux.waitForLine("alice", "Kay has joined");
    await tmux.type("kay", "Hi!");
    await tmux.waitForLine("alice", "[Kay] Hi!");
    await tmux.type("alice", "Hello!");
    await tmux.waitForLine("kay", "[Alice] Hello!");
    // Each message replaced the prompt line it arrived on; a fresh prompt follows it.
    deepStrictEqual(await tmux.screen("alice"), [
      "[Me] /create tas",
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
