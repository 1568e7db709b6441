// The IM client in a real terminal: two people chat, typing commands and reading their screens.
import { deepStrictEqual } from "node:assert/strict";
import { EntryProcess, hasTmux, Tmux, waitUntil } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("im_tmux_test: SKIPPED, tmux is not installed");

Deno.test({
  name: "clients/im.ts under tmux: invite, accept, chat in two conversations, leave",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/im.ts", ["--port", "0"], ["--allow-net"]);
    const port = String(await server.listeningPort());
    await using tmux = new Tmux();
    await tmux.start("ann", "clients/im.ts", ["--user", "ann", "--port", port], ["--allow-net"]);
    await tmux.waitForLine("ann", "Online: ann (online)");
    await tmux.start(
      "ben",
      "clients/im.ts",
      ["--user", "ben", "--port", port, "--status", "busy"],
      ["--allow-net"],
    );
    await tmux.waitForLine("ann", "Online: ann (online), ben (busy)");
    await tmux.type("ann", "/invite ben");
    await tmux.waitForLine("ann", "[1] conversation started; you are in it");
    await tmux.waitForLine("ben", "[1] ann invites you: /accept 1");
    await tmux.type("ben", "/accept 1");
    await tmux.type("ben", "hi ann");
    await tmux.waitForLine("ann", "[1] ben: hi ann");
    await tmux.type("ann", "/invite ben");
    await tmux.waitForLine("ben", "[2] ann invites you: /accept 2");
    await tmux.type("ben", "/accept 2");
    await tmux.type("ann", "in two");
    await tmux.waitForLine("ben", "[2] ann: in two");
    await tmux.type("ann", "/say 1 back in one");
    await tmux.waitForLine("ben", "[1] ann: back in one");
    await tmux.type("ben", "/leave 1");
    await tmux.type("ben", "/list");
    await tmux.waitForLine("ben", "[1] ann");
    const screen = await tmux.screen("ben");
    deepStrictEqual(screen.slice(-2), ["[1] ann", "[2] ann, ben"]);
    await tmux.type("ben", "/quit");
    // ann's screen already showed "Online: ann (online)" at the start: wait for the newest line to say it.
    await waitUntil(
      async () =>
        (await tmux.screen("ann")).findLast((l) => l.startsWith("Online:")) ===
          "Online: ann (online)",
      10000,
      "ben to go offline on ann's screen",
    );
  },
});
