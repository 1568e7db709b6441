// deno-lint-ignore-file no-control-regex
// The CRC client in a real terminal, next to a client in this process.
import { deepStrictEqual, match } from "node:assert/strict";
import { serveCrcNode } from "../servers/crc_node.ts";
import { CrcClient } from "../clients/crc.ts";
import { hasTmux, portOf, Tmux, waitUntil } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("crc_tmux_test: SKIPPED, tmux is not installed");

Deno.test({
  name:
    "clients/crc.ts under tmux: welcome, presence, editing, history, own chats shown, a chat arriving mid-line, /help, a taken id exits 1 with a hint, Ctrl+D",
  ignore: !HAS_TMUX,
  async fn() {
    await using node = await serveCrcNode({ id: 1, port: 0 });
    const port = String(portOf(node.addr));
    await using bob = await CrcClient.connect({
      id: 202,
      username: "bob",
      port: portOf(node.addr),
    });
    await using tmux = new Tmux();
    const args = (id: string) => ["--id", id, "--username", "alice", "--serverport", port];
    await tmux.start("alice", "clients/crc.ts", args("201"), ["--allow-net"], {
      env: { NO_COLOR: "" },
    });
    await tmux.waitForLine(
      "alice",
      /^\d\d:\d\d \* Welcome to the Clemson Relay Chat network alice$/,
    );
    await tmux.waitForLine("alice", /^\d\d:\d\d \* bob \(202\) is online$/);
    await tmux.typeText("alice", "/msg bob hllo");
    await tmux.keys("alice", "Left", "Left", "Left");
    await tmux.typeText("alice", "e");
    await tmux.keys("alice", "Enter");
    await waitUntil(() => bob.chatLog.length === 1, 5000, "bob's first chat");
    deepStrictEqual(bob.chatLog[0].text, "hello");
    await tmux.waitForLine("alice", /^\d\d:\d\d -> bob: hello$/);
    await tmux.keys("alice", "Up", "C-w");
    await tmux.typeText("alice", "again");
    await tmux.keys("alice", "Enter");
    await waitUntil(() => bob.chatLog.length === 2, 5000, "bob's second chat");
    deepStrictEqual(bob.chatLog[1].text, "again");

    await tmux.typeText("alice", "half typed");
    await tmux.waitForLine("alice", "> half typed");
    await bob.chat(201, "incoming");
    const screen = await tmux.waitForLine("alice", /^\d\d:\d\d \[bob\] incoming$/);
    deepStrictEqual(screen.at(-1), "> half typed");
    deepStrictEqual((await tmux.cursor("alice")).x, "> half typed".length);
    match(await tmux.styledScreen("alice"), /\x1b\[[0-9;]*36mbob/);
    await tmux.keys("alice", "C-u");
    await tmux.type("alice", "/help");
    await tmux.waitForLine("alice", /^\/msg NAME-or-ID TEXT\s+send a chat/);
    await tmux.type("alice", "/nope");
    await tmux.waitForLine("alice", "! unknown command /nope: type /help");

    await tmux.start("dup", "clients/crc.ts", args("202"), ["--allow-net"]);
    deepStrictEqual(await tmux.exitCode("dup"), 1);
    await tmux.waitForLine(
      "dup",
      "Someone has already registered with ID 202; use another --id, or none for a random one",
    );
    await tmux.keys("alice", "C-d");
    deepStrictEqual(await tmux.exitCode("alice"), 0);
    await waitUntil(() => !bob.users.has(201), 5000, "alice's quit");
  },
});
