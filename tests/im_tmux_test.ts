// deno-lint-ignore-file no-control-regex
// The IM client in a real terminal: people chat, typing commands and reading their screens.
import { deepStrictEqual, match, ok } from "node:assert/strict";
import { encodeIm, ImLineDecoder, parseImLine } from "../protocols/im.ts";
import { EntryProcess, hasTmux, Peer, Tmux, waitUntil } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("im_tmux_test: SKIPPED, tmux is not installed");

const imArgs = (user: string, port: string, ...extra: string[]) => [
  "--user",
  user,
  "--port",
  port,
  ...extra,
];

Deno.test({
  name:
    "clients/im.ts under tmux: presence notices, invite, accept, two conversations, the prompt shows the current one, leave, quit",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/im.ts", ["--port", "0"], ["--allow-net"]);
    const port = String(await server.listeningPort());
    await using tmux = new Tmux();
    const flags = ["--allow-net"];
    await tmux.start("ann", "clients/im.ts", imArgs("ann", port, "--no-timestamps"), flags);
    await tmux.waitForLine("ann", "Online: ann (online)");
    await tmux.waitForLine("ann", ">");
    await tmux.start("ben", "clients/im.ts", [
      ...imArgs("ben", port, "--no-timestamps"),
      "--status",
      "busy",
    ], flags);
    await tmux.waitForLine("ann", "ben is online (busy)");
    await tmux.type("ann", "/invite ben");
    await tmux.waitForLine("ann", "[1] conversation started; you are in it");
    await tmux.waitForLine("ann", "[1]>");
    await tmux.waitForLine("ben", "[1] ann invites you: /accept 1");
    await tmux.type("ben", "/accept 1");
    await tmux.waitForLine("ben", "[1]>");
    await tmux.type("ben", "hi ann");
    await tmux.waitForLine("ann", "[1] ben: hi ann");
    await tmux.waitForLine("ben", "[1] ben: hi ann"); // the echo of one's own message
    await tmux.type("ann", "/invite ben");
    await tmux.waitForLine("ben", "[2] ann invites you: /accept 2");
    await tmux.type("ben", "/accept 2");
    await tmux.type("ben", "/list"); // its answer proves the server has ben's JOIN
    await tmux.waitForLine("ben", "[2] ann, ben");
    await tmux.waitForLine("ben", "[2]>");
    await tmux.type("ann", "in two");
    await tmux.waitForLine("ben", "[2] ann: in two");
    await tmux.type("ann", "/say 1 back in one");
    await tmux.waitForLine("ben", "[1] ann: back in one");
    await tmux.type("ben", "/leave 1");
    await tmux.waitForLine("ben", "[1] you left the conversation");
    await tmux.type("ben", "/list");
    await waitUntil(
      async () =>
        JSON.stringify((await tmux.screen("ben")).slice(-3)) ===
          JSON.stringify(["[1] ann", "[2] ann, ben", "[2]>"]),
      10000,
      "ben's list without conversation 1",
    );
    // Inviting someone who is not online says so, and starts nothing.
    await tmux.type("ben", "/invite nobody");
    await tmux.waitForLine("ben", "! cannot invite nobody: not online");
    await tmux.type("ben", "/status away");
    await tmux.waitForLine("ann", "ben is now away");
    await tmux.type("ben", "/quit");
    deepStrictEqual(await tmux.exitCode("ben"), 0);
    await tmux.waitForLine("ann", "ben went offline");
    ok(!(await tmux.screen("ben")).some((l) => l.startsWith("[3]")), "no conversation 3");
  },
});

Deno.test({
  name:
    "clients/im.ts under tmux: editing keys, history, a message arriving mid-line, timestamps, colours, a taken name asked again, /help, Ctrl+C",
  ignore: !HAS_TMUX,
  async fn() {
    await using server = EntryProcess.start("servers/im.ts", ["--port", "0"], ["--allow-net"]);
    const port = await server.listeningPort();
    await using bob = await Peer.connect(
      { transport: "tcp", hostname: "127.0.0.1", port },
      new ImLineDecoder(),
    );
    const bobSees = async (command: string) => {
      while (true) {
        const m = parseImLine(await bob.next(5000));
        if (m.command === command) return m;
      }
    };
    await bob.write(encodeIm({ command: "REGISTER", username: "bob", status: "online" }));
    await bobSees("ONLINE_USERS");
    await using tmux = new Tmux();
    await tmux.start("ann", "clients/im.ts", imArgs("ann", String(port)), ["--allow-net"], {
      env: { NO_COLOR: "" },
    });
    await tmux.waitForLine("ann", /^\d\d:\d\d Online: ann \(online\), bob \(online\)$/);
    await tmux.typeText("ann", "/invite bbo");
    await tmux.keys("ann", "BSpace", "BSpace", "BSpace");
    await tmux.typeText("ann", "bob");
    await tmux.keys("ann", "Enter");
    await bobSees("INVITATION");
    await bob.write(encodeIm({ command: "JOIN", conversation: 1 }));
    await bob.write(encodeIm({ command: "LIST_CONVERSATIONS" }));
    await bobSees("CONVERSATIONS"); // the server has bob's JOIN
    await tmux.waitForLine("ann", "[1]>");
    await tmux.typeText("ann", "wrld");
    await tmux.keys("ann", "Home", "Right");
    await tmux.typeText("ann", "o");
    await tmux.keys("ann", "End", "Enter");
    deepStrictEqual(await bobSees("MESSAGE"), {
      command: "MESSAGE",
      conversation: 1,
      sender: "ann",
      message: "world",
    });
    await tmux.waitForLine("ann", /^\d\d:\d\d \[1\] ann: world$/);
    await tmux.keys("ann", "Up", "C-w");
    await tmux.typeText("ann", "again");
    await tmux.keys("ann", "Enter");
    deepStrictEqual((await bobSees("MESSAGE") as { message: string }).message, "again");

    await tmux.typeText("ann", "half typed");
    await tmux.waitForLine("ann", "[1]> half typed");
    await bob.write(encodeIm({ command: "SEND_MESSAGE", conversation: 1, message: "incoming" }));
    const screen = await tmux.waitForLine("ann", /^\d\d:\d\d \[1\] bob: incoming$/);
    deepStrictEqual(screen.at(-1), "[1]> half typed");
    deepStrictEqual((await tmux.cursor("ann")).x, "[1]> half typed".length);
    const styled = await tmux.styledScreen("ann");
    match(styled, /\x1b\[[0-9;]*36mbob/); // another person's name
    match(styled, /\x1b\[[0-9;]*32m.*ann: world/); // one's own message
    await tmux.keys("ann", "C-u");
    await tmux.type("ann", "/help");
    await tmux.waitForLine("ann", /^\/invite NAME \[NAME\.\.\.\]\s+start a conversation/);
    await tmux.type("ann", "/bogus");
    await tmux.waitForLine("ann", /^\d\d:\d\d ! unknown command \/bogus: type \/help$/);

    // A second "ann" is told the name is taken and asked for another.
    await tmux.start("two", "clients/im.ts", imArgs("ann", String(port)), ["--allow-net"], {
      env: { NO_COLOR: "1" },
    });
    await tmux.waitForLine("two", /! username ann is already taken$/);
    await tmux.waitForLine("two", "Choose another name:");
    await tmux.type("two", "anna");
    await tmux.waitForLine("two", /^\d\d:\d\d Online: ann \(online\), anna \(online\), bob/);
    ok(!/\x1b\[[0-9;]*3\dm/.test(await tmux.styledScreen("two")), "NO_COLOR: no colours");
    await tmux.waitForLine("ann", /anna is online \(online\)$/);
    await tmux.keys("two", "C-c");
    deepStrictEqual(await tmux.exitCode("two"), 0);
    await tmux.waitForLine("ann", /anna went offline$/);
    await waitUntil(async () => (await tmux.screen("ann")).at(-1) === "[1]>", 5000, "ann's prompt");
  },
});
