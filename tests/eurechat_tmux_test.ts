// deno-lint-ignore-file no-control-regex
// The eurechat peer in a real terminal: a hidden password, presence, direct messages.
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { serveDirectory } from "../servers/directory.ts";
import { DirectoryClient, sendPeerMessage, servePeer } from "../clients/eurechat.ts";
import { hasTmux, portOf, Tmux, waitUntil } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("eurechat_tmux_test: SKIPPED, tmux is not installed");

Deno.test({
  name:
    "clients/eurechat.ts under tmux: password without echo, presence notices, own messages, a message arriving mid-line, editing, /help",
  ignore: !HAS_TMUX,
  async fn() {
    await using directory = serveDirectory({
      port: 0,
      db: ":memory:",
      hashCost: 4,
      livenessIntervalMs: 0,
    });
    const port = String(portOf(directory.addr));
    const inbox: string[] = [];
    await using bobListener = servePeer({
      onMessage: (from, text) => inbox.push(`${from}: ${text}`),
    });
    await using tmux = new Tmux();
    await tmux.start(
      "alice",
      "clients/eurechat.ts",
      [
        "--user",
        "alice",
        "--directory-port",
        port,
        "--keepalive",
        "0.1",
      ],
      ["--allow-net"],
      { env: { NO_COLOR: "" } },
    );
    await tmux.waitForLine("alice", "Password:");
    await tmux.typeText("alice", "s3cret");
    await tmux.keys("alice", "Enter");
    await tmux.waitForLine("alice", /^Logged in as alice, reachable at 127\.0\.0\.1:\d+/);
    ok(
      (await tmux.screen("alice")).every((l) => !l.includes("s3cret")),
      "the password never shows",
    );
    const bob = await DirectoryClient.connect("127.0.0.1", portOf(directory.addr));
    await bob.login("bob", "pw");
    await bob.bind("127.0.0.1", portOf(bobListener.addr));
    await tmux.waitForLine("alice", /^\d\d:\d\d bob is online$/);

    await tmux.typeText("alice", "/msg bob hi thre");
    await tmux.keys("alice", "Left", "Left");
    await tmux.typeText("alice", "e");
    await tmux.keys("alice", "Enter");
    await waitUntil(() => inbox.length === 1, 5000, "bob's message");
    deepStrictEqual(inbox, ["alice: hi there"]);
    await tmux.waitForLine("alice", /^\d\d:\d\d -> bob: hi there$/);

    await tmux.typeText("alice", "half typed");
    await tmux.waitForLine("alice", "> half typed");
    const [alice] = await bob.query("alice");
    await sendPeerMessage(alice, "bob", "incoming");
    const screen = await tmux.waitForLine("alice", /^\d\d:\d\d \[bob\] incoming$/);
    deepStrictEqual(screen.at(-1), "> half typed");
    deepStrictEqual((await tmux.cursor("alice")).x, "> half typed".length);
    match(await tmux.styledScreen("alice"), /\x1b\[[0-9;]*36mbob/);
    await tmux.keys("alice", "C-a", "C-k");
    await tmux.type("alice", "/help");
    await tmux.waitForLine("alice", /^\/msg NAME TEXT\s+send NAME a message$/);
    await tmux.type("alice", "/nope");
    await tmux.waitForLine("alice", "Unknown command /nope: type /help for the commands");
    await bob.leave();
    await bob.close();
    await tmux.waitForLine("alice", /^\d\d:\d\d bob went offline$/);
    await tmux.type("alice", "/quit");
    deepStrictEqual(await tmux.exitCode("alice"), 0);
    await waitUntil(() => !directory.bindings.has("alice"), 5000, "alice to leave");
  },
});
