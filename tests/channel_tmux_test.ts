// The real client and server together, driven as a person would: tmux runs the client, we type
// with send-keys and read the screen with capture-pane. Skipped (and said so) where tmux is missing.
import { deepStrictEqual } from "node:assert/strict";
import { EntryProcess, waitUntil } from "./_helpers.ts";

const hasTmux = await new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" })
  .output()
  .then((o) => o.success, () => false);
if (!hasTmux) console.warn("channel_tmux_test: SKIPPED, tmux is not installed");

async function tmux(...args: string[]): Promise<string> {
  const out = await new Deno.Command("tmux", { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test({
  name: "clients/channel.ts under tmux: messages overwrite the [Me] prompt on screen",
  ignore: !hasTmux,
  async fn() {
    await using server = EntryProcess.start("servers/channel.ts", ["--port", "0"], ["--allow-net"]);
    const port = await server.listeningPort();
    const socket = `parley-test-${Deno.pid}-${port}`;
    const client = (session: string, name: string) =>
      tmux(
        "-L",
        socket,
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "80",
        "-y",
        "12",
        Deno.execPath(),
        "run",
        "--quiet",
        "--allow-net",
        "clients/channel.ts",
        name,
        "127.0.0.1",
        String(port),
      );
    const screen = async (session: string) =>
      (await tmux("-L", socket, "capture-pane", "-p", "-t", session)).split("\n").map((l) =>
        l.trimEnd()
      ).filter((l) => l !== "");
    try {
      await client("alice", "Alice");
      await client("kay", "Kay");
      await waitUntil(
        async () =>
          (await screen("alice")).includes("[Me]") && (await screen("kay")).includes("[Me]"),
        10000,
        "prompts",
      );
      await tmux("-L", socket, "send-keys", "-t", "alice", "/create tas", "Enter");
      await waitUntil(async () => (await screen("alice")).length === 2, 5000, "alice's new prompt");
      await tmux("-L", socket, "send-keys", "-t", "kay", "/join tas", "Enter");
      await waitUntil(
        async () => (await screen("alice")).includes("Kay has joined"),
        5000,
        "join notice",
      );
      await tmux("-L", socket, "send-keys", "-t", "kay", "Hi!", "Enter");
      await waitUntil(
        async () => (await screen("alice")).includes("[Kay] Hi!"),
        5000,
        "Kay's chat",
      );
      await tmux("-L", socket, "send-keys", "-t", "alice", "Hello!", "Enter");
      await waitUntil(
        async () => (await screen("kay")).includes("[Alice] Hello!"),
        5000,
        "Alice's chat",
      );
      // Each message replaced the prompt line it arrived on; a fresh prompt follows it.
      deepStrictEqual(await screen("alice"), [
        "[Me] /create tas",
        "Kay has joined",
        "[Kay] Hi!",
        "[Me] Hello!",
        "[Me]",
      ]);
      deepStrictEqual(await screen("kay"), [
        "[Me] /join tas",
        "[Me] Hi!",
        "[Alice] Hello!",
        "[Me]",
      ]);
    } finally {
      await tmux("-L", socket, "kill-server");
    }
  },
});
