// The timestamp client in a real terminal.
import { deepStrictEqual } from "node:assert/strict";
import { EntryProcess, hasTmux, Tmux } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("timestamp_tmux_test: SKIPPED, tmux is not installed");

const REPLY = String.raw`\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\]`;

Deno.test({
  name:
    "clients/timestamp.ts under tmux: prompt, stamped replies, editing and history, /help, a dead server noticed at once (exit 1)",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/timestamp.ts", ["--port", "0"], [
      "--allow-net",
    ]);
    const port = String(await server.listeningPort());
    await using tmux = new Tmux();
    await tmux.start("ts", "clients/timestamp.ts", ["--port", port], ["--allow-net"]);
    await tmux.waitForLine("ts", ">");
    await tmux.typeText("ts", "helo");
    await tmux.keys("ts", "Left");
    await tmux.typeText("ts", "l");
    await tmux.keys("ts", "Enter");
    await tmux.waitForLine("ts", "> hello");
    await tmux.waitForLine("ts", new RegExp(String.raw`^\d\d:\d\d ${REPLY} hello$`));
    await tmux.keys("ts", "Up", "End");
    await tmux.typeText("ts", " again");
    await tmux.keys("ts", "Enter");
    await tmux.waitForLine("ts", new RegExp(String.raw`^\d\d:\d\d ${REPLY} hello again$`));
    await tmux.type("ts", "/help");
    await tmux.waitForLine("ts", /^TEXT\s+send TEXT; the server sends it back with its time$/);
    await tmux.typeText("ts", "never sent");
    await tmux.waitForLine("ts", "> never sent"); // the client has the keys
    deepStrictEqual((await server.stop("SIGINT")).code, 0);
    // Nobody pressed Enter: the client still notices the server is gone.
    deepStrictEqual(await tmux.exitCode("ts"), 1);
    await tmux.waitForLine("ts", `Server at 127.0.0.1:${port} has disconnected`);
  },
});
