// deno-lint-ignore-file no-control-regex
// SPEC 7.2: nothing a peer sends can retitle the window, hide text, move the cursor or fake a
// line. For each client a hostile peer (or a fake server, where the real one refuses such names)
// sends the payloads of the issue; the tmux screen and the raw non-TTY output must both show
// them neutralised.
import { deepStrictEqual, ok } from "node:assert/strict";
import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { CRC_STATUS, CrcDecoder, encodeCrc } from "../protocols/crc.ts";
import { encodeEurechat, EurechatDecoder } from "../protocols/eurechat.ts";
import { encodeIm, ImLineDecoder } from "../protocols/im.ts";
import { type FrameDecoder, readFrames } from "../protocols/frames.ts";
import { writeAll } from "../net/bytes.ts";
import { EntryProcess, hasTmux, Peer, Tmux } from "./_helpers.ts";

const HAS_TMUX = await hasTmux();
if (!HAS_TMUX) console.warn("client_hijack_test: tmux parts SKIPPED, tmux is not installed");

const TITLE = "\x1b]0;pwned\x07";
const HIDE = "\x1b[8m";
const UP = "\x1b[1A\x1b[2K";
const C1_BIDI = "\x9b\u202e";
const SEEN = { title: "^[]0;pwned^G", hide: "^[[8m", up: "^[[1A^[[2K", c1Bidi: "<U+009B><U+202E>" };
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f\x9b\u202e]/; // anything but LF (and the channel's CR)

/** A TCP server that runs `handle` for each connection; closing it closes them all. */
function fakeServer<T>(
  decoder: () => FrameDecoder<T>,
  onFrame: (frame: T, conn: Deno.Conn) => Promise<void>,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      tasks.push((async () => {
        try {
          for await (const frame of readFrames(conn.readable, decoder())) {
            await onFrame(frame, conn);
          }
        } catch { /* the client went away, or we closed it */ }
      })());
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
      await Promise.all(tasks);
    },
  };
}

const send = (conn: Deno.Conn, bytes: Uint8Array) => writeAll(conn, bytes);

/** Runs the client in tmux and checks what the screen shows. */
async function onScreen(
  script: string,
  args: string[],
  expect: RegExp,
  check: (lines: string[]) => void,
) {
  if (!HAS_TMUX) return;
  await using tmux = new Tmux();
  await tmux.start("victim", script, args, ["--allow-net"], { env: { NO_COLOR: "" } });
  const lines = await tmux.waitForLine("victim", expect);
  check(lines);
  ok(!(await tmux.title("victim")).includes("pwned"), "the window title is unchanged");
  ok(!(await tmux.styledScreen("victim")).includes("\x1b[8m"), "no hidden text on screen");
}

/** Runs the client with piped stdin and checks its raw output. */
async function inRawOutput(
  script: string,
  args: string[],
  expect: RegExp,
  check: (output: string) => void,
  allowed = RAW_CONTROL,
) {
  await using client = EntryProcess.start(script, args, ["--allow-net"], { stdin: true });
  await client.waitFor(expect);
  check(client.output);
  const raw = allowed.exec(client.output);
  ok(
    raw === null,
    `a raw control character U+${raw?.[0].charCodeAt(0).toString(16)} in the output`,
  );
  await client.closeStdin();
  deepStrictEqual((await client.exited()).code, 0);
}

function includesAll(text: string, parts: string[]) {
  for (const part of parts) {
    ok(text.includes(part), `${JSON.stringify(part)} missing from:\n${text}`);
  }
}

Deno.test("clients/channel.ts neutralises a peer's escape sequences and fake lines, on screen and piped", async () => {
  await using server = EntryProcess.start("servers/channel.ts", ["--port", "0"], ["--allow-net"]);
  const port = await server.listeningPort();
  await using mallory = await Peer.connect(
    { transport: "tcp", hostname: "127.0.0.1", port },
    new ChannelDecoder(),
  );
  await mallory.write(encodeChannelFrame("Mallory"));
  await mallory.write(encodeChannelFrame("/create den"));
  await mallory.write(encodeChannelFrame("/list"));
  deepStrictEqual(await mallory.next(), "den");
  const attack = async () => {
    while (await mallory.next(5000) !== "Alice has joined"); // (the tmux Alice's leave comes first)
    await mallory.write(encodeChannelFrame(`${TITLE}a ${HIDE}secret ${UP}${C1_BIDI}`));
    await mallory.write(encodeChannelFrame("x\n[Bob] fake line"));
  };
  const wanted = [
    `[Mallory] ${SEEN.title}a ${SEEN.hide}secret ${SEEN.up}${SEEN.c1Bidi}`,
    "[Mallory] x^J[Bob] fake line",
  ];
  const args = ["Alice", "127.0.0.1", String(port)];
  if (HAS_TMUX) {
    await using tmux = new Tmux();
    await tmux.start("victim", "clients/channel.ts", args, ["--allow-net"]);
    await tmux.waitForLine("victim", "[Me]");
    await tmux.type("victim", "/join den");
    await attack();
    const lines = await tmux.waitForLine("victim", /fake line$/);
    includesAll(lines.join("\n"), wanted);
    ok(!lines.some((l) => /^(\d\d:\d\d )?\[Bob\]/.test(l)), "no fake [Bob] line");
    ok(!(await tmux.title("victim")).includes("pwned"));
    ok(!(await tmux.styledScreen("victim")).includes("\x1b[8m"));
    await tmux.keys("victim", "C-d");
    deepStrictEqual(await tmux.exitCode("victim"), 0);
  }
  await using alice = EntryProcess.start("clients/channel.ts", args, ["--allow-net"], {
    stdin: true,
  });
  await alice.waitFor(/^\[Me\] $/);
  await alice.type("/join den\n");
  await attack();
  await alice.waitFor(/fake line\n\[Me\] $/);
  includesAll(alice.output, wanted.map((w) => `\r    \r${w}\n[Me] `));
  ok(!/[\x00-\x09\x0b\x0c\x0e-\x1f\x7f\x9b\u202e]/.test(alice.output), "only the spec's CR and LF");
  await alice.closeStdin();
  deepStrictEqual((await alice.exited()).code, 0);
});

Deno.test("clients/im.ts neutralises hostile names, statuses with newlines and messages, on screen and piped", async () => {
  const evilName = `e${TITLE}`;
  await using server = fakeServer(() => new ImLineDecoder(), async (line, conn) => {
    if (!line.startsWith("REGISTER")) return;
    await send(
      conn,
      encodeIm({
        command: "ONLINE_USERS",
        users: { alice: "online", [evilName]: "on", evil: "x\nOnline: evil (fake)" },
      }),
    );
    await send(conn, encodeIm({ command: "INVITATION", conversation: 1, inviter: evilName }));
    await send(
      conn,
      encodeIm({
        command: "MESSAGE",
        conversation: 1,
        sender: "evil",
        message: `${HIDE}secret ${UP}${C1_BIDI} y\n[1] bob: fake`,
      }),
    );
  });
  const args = ["--user", "alice", "--port", String(server.port)];
  const wanted = [
    `Online: alice (online), e${SEEN.title} (on), evil (x^JOnline: evil (fake))`,
    `[1] e${SEEN.title} invites you: /accept 1`,
    `[1] evil: ${SEEN.hide}secret ${SEEN.up}${SEEN.c1Bidi} y^J[1] bob: fake`,
  ];
  const noFake = (lines: string[]) =>
    ok(!lines.some((l) => /^(\d\d:\d\d )?(Online: evil|\[1\] bob)/.test(l)), "no fake line");
  await onScreen("clients/im.ts", args, /bob: fake$/, (lines) => {
    includesAll(lines.join("\n"), wanted);
    noFake(lines);
  });
  await inRawOutput("clients/im.ts", args, /bob: fake\n/, (output) => {
    includesAll(output, wanted.map((w) => `${w}\n`));
    noFake(output.split("\n"));
  });
});

/** A fake CRC node: welcomes the client, then sends what `attack` makes (raw bytes). */
function fakeNode(attack: (client: number) => Uint8Array[]) {
  return fakeServer(() => new CrcDecoder(), async (m, conn) => {
    if (m.kind !== "client_registration") return;
    const welcome = `Welcome to the Clemson Relay Chat network ${m.name}`;
    await send(
      conn,
      encodeCrc({
        kind: "status",
        source: 1,
        destination: m.source,
        code: CRC_STATUS.welcome,
        content: welcome,
      }),
    );
    for (const frame of attack(m.source)) await send(conn, frame);
  });
}

Deno.test("clients/crc.ts neutralises a hostile chat, on screen and piped", async () => {
  await using node = fakeNode((client) => [
    encodeCrc({ kind: "client_registration", source: 66, lastHop: 1, name: "evil", info: "" }),
    encodeCrc({
      kind: "chat",
      source: 66,
      destination: client,
      content: `${TITLE}${HIDE}secret ${UP}${C1_BIDI} x\n[bob] fake`,
    }),
  ]);
  const args = ["--id", "5", "--username", "alice", "--serverport", String(node.port)];
  const wanted = [
    "* evil (66) is online",
    `[evil] ${SEEN.title}${SEEN.hide}secret ${SEEN.up}${SEEN.c1Bidi} x^J[bob] fake`,
  ];
  const noFake = (lines: string[]) =>
    ok(!lines.some((l) => /^(\d\d:\d\d )?\[bob\]/.test(l)), "no fake line");
  await onScreen("clients/crc.ts", args, /\[bob\] fake$/, (lines) => {
    includesAll(lines.join("\n"), wanted);
    noFake(lines);
  });
  await inRawOutput("clients/crc.ts", args, /\[bob\] fake\n/, (output) => {
    includesAll(output, wanted.map((w) => `${w}\n`));
    noFake(output.split("\n"));
  });
});

Deno.test("clients/crc.ts refuses a user name with ESC [1A ESC [2K from its node: one line, exit 1, nothing rewritten", async () => {
  // A name with control characters is a framing error for the decoder (SPEC 6.3, 6.6): the client
  // cannot trust that node any more and ends the session.
  const name = new TextEncoder().encode(`${UP}evil`);
  const registration = new Uint8Array(12 + name.length);
  const view = new DataView(registration.buffer);
  view.setUint8(0, 0x80);
  view.setUint32(1, 66);
  view.setUint32(5, 1);
  view.setUint8(9, name.length);
  view.setUint16(10, 0);
  registration.set(name, 12);
  await using node = fakeNode(() => [registration]);
  const args = ["--id", "5", "--username", "alice", "--serverport", String(node.port)];
  const refused = /has disconnected \(Cannot decode frame: name contains a control character\)$/;
  if (HAS_TMUX) {
    await using tmux = new Tmux();
    await tmux.start("victim", "clients/crc.ts", args, ["--allow-net"]);
    deepStrictEqual(await tmux.exitCode("victim"), 1);
    const lines = await tmux.waitForLine("victim", refused);
    ok(!lines.some((l) => l.includes("evil")), "the name never reached the screen");
  }
  await using client = EntryProcess.start("clients/crc.ts", args, ["--allow-net"], { stdin: true });
  deepStrictEqual((await client.exited()).code, 1);
  ok(refused.test(client.output.trimEnd()), client.output);
  ok(!RAW_CONTROL.test(client.output), JSON.stringify(client.output));
});

Deno.test("clients/eurechat.ts neutralises a directory name like alice,127.0.0.1,1 and a hostile peer's message", async () => {
  const result = "alice,127.0.0.1,1,127.0.0.1,5555\n" + `e${TITLE},127.0.0.1,5556`;
  await using directory = fakeServer(() => new EurechatDecoder(), async (m, conn) => {
    const reply = m.type === "QUERY"
      ? encodeEurechat("RESULT", [], result)
      : encodeEurechat("ACK", [], `${m.type} ok`);
    await send(conn, reply);
  });
  const args = ["--user", "me", "--password", "pw", "--directory-port", String(directory.port)];
  const wantedWho = [`alice,127.0.0.1,1 127.0.0.1:5555`, `e${SEEN.title} 127.0.0.1:5556`];
  const wantedMessage =
    `[evil${SEEN.title}] ${SEEN.hide}secret ${SEEN.up}${SEEN.c1Bidi} z^J[bob] fake`;
  const attack = async (listenPort: number) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: listenPort });
    try {
      await writeAll(
        conn,
        encodeEurechat("MESSAGE", [`evil${TITLE}`], `${HIDE}secret ${UP}${C1_BIDI} z\n[bob] fake`),
      );
    } finally {
      conn.close();
    }
  };
  const noFake = (lines: string[]) =>
    ok(!lines.some((l) => /^(\d\d:\d\d )?(\[bob\]|alice 127\.0\.0\.1:1$)/.test(l)), "no fake line");
  if (HAS_TMUX) {
    await using tmux = new Tmux();
    await tmux.start("victim", "clients/eurechat.ts", args, ["--allow-net"]);
    const login = await tmux.waitForLine(
      "victim",
      /^Logged in as me, reachable at 127\.0\.0\.1:\d+/,
    );
    await attack(Number(/:(\d+)\./.exec(login.find((l) => l.startsWith("Logged in"))!)![1]));
    await tmux.type("victim", "/who");
    const lines = await tmux.waitForLine("victim", /127\.0\.0\.1:5556$/);
    await tmux.waitForLine("victim", /\[bob\] fake$/);
    includesAll((await tmux.screen("victim")).join("\n"), [...wantedWho, wantedMessage]);
    noFake(lines);
    ok(!(await tmux.title("victim")).includes("pwned"));
    ok(!(await tmux.styledScreen("victim")).includes("\x1b[8m"));
  }
  await using me = EntryProcess.start("clients/eurechat.ts", args, ["--allow-net"], {
    stdin: true,
  });
  const [, listenPort] = await me.waitFor(/reachable at 127\.0\.0\.1:(\d+)\./);
  await attack(Number(listenPort));
  await me.waitFor(/\[bob\] fake\n/);
  await me.type("/who\n");
  await me.waitFor(/127\.0\.0\.1:5556\n/);
  includesAll(me.output, [...wantedWho, wantedMessage].map((w) => `${w}\n`));
  noFake(me.output.split("\n"));
  ok(!RAW_CONTROL.test(me.output), JSON.stringify(me.output));
  await me.closeStdin();
  deepStrictEqual((await me.exited()).code, 0);
});

Deno.test("clients/timestamp.ts neutralises a hostile server's reply, on screen and piped", async () => {
  const line = `[Tue Nov  7 10:00:00 2017] ${TITLE}${HIDE}secret ${UP}${C1_BIDI} a\rb`;
  const raw = {
    decode: (chunk: Uint8Array) => [chunk.slice()],
    end() {},
  };
  await using server = fakeServer(() => raw, async (_chunk, conn) => {
    await send(conn, new TextEncoder().encode(`${line}\n`));
  });
  const args = ["--port", String(server.port)];
  const wanted = `${SEEN.title}${SEEN.hide}secret ${SEEN.up}${SEEN.c1Bidi} a^Mb`;
  if (HAS_TMUX) {
    await using tmux = new Tmux();
    await tmux.start("victim", "clients/timestamp.ts", args, ["--allow-net"]);
    await tmux.waitForLine("victim", ">");
    await tmux.type("victim", "hello");
    const lines = await tmux.waitForLine("victim", /a\^Mb$/);
    includesAll(lines.join("\n"), [wanted]);
    ok(!(await tmux.title("victim")).includes("pwned"));
    ok(!(await tmux.styledScreen("victim")).includes("\x1b[8m"));
  }
  await using client = EntryProcess.start("clients/timestamp.ts", args, ["--allow-net"], {
    stdin: true,
  });
  await client.type("hello\n");
  await client.waitFor(/a\^Mb\n> $/);
  includesAll(client.output, [`> [Tue Nov  7 10:00:00 2017] ${wanted}\n> `]);
  ok(!RAW_CONTROL.test(client.output), JSON.stringify(client.output));
  await client.type("\n");
  deepStrictEqual((await client.exited()).code, 0);
});
