// The terminal layer without a terminal: rendering, key decoding, the line editor, the console
// in interactive mode over injected bytes, the session runner and the flag messages.
import { deepStrictEqual, ok, rejects, throws } from "node:assert/strict";
import { clockTime, columns, renderLine, tone, visible } from "../cli/render.ts";
import { HISTORY_LINES, type Key, KeyDecoder, LineEditor } from "../cli/line_editor.ts";
import { bufferScreen, ClientConsole, consoleFlags } from "../cli/console.ts";
import { runSession } from "../cli/session.ts";
import { parseCommandLine, UsageError } from "../cli/command.ts";
import { FrameError } from "../protocols/errors.ts";

Deno.test("visible() shows C0 as ^X, DEL as ^?, C1 and bidi controls as <U+XXXX>", () => {
  deepStrictEqual(visible("\x00\x07\x09\x0a\x0d\x1b\x1f"), "^@^G^I^J^M^[^_");
  deepStrictEqual(visible("\x7f"), "^?");
  deepStrictEqual(visible("\x80\x9b\x9f"), "<U+0080><U+009B><U+009F>");
  deepStrictEqual(
    visible("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"),
    "<U+202A><U+202B><U+202C><U+202D><U+202E><U+2066><U+2067><U+2068><U+2069>",
  );
  deepStrictEqual(visible("héllo wörld \u00a0 ✓ 😀 日本"), "héllo wörld \u00a0 ✓ 😀 日本");
  deepStrictEqual(visible("\x1b]0;pwned\x07"), "^[]0;pwned^G");
});

Deno.test("renderLine() adds colours only by tone, never lets a span's escape through, and stamps HH:MM", () => {
  const line = ["[", tone.name("bob\x1b[31m"), "] hi"] as const;
  deepStrictEqual(renderLine(line), "[bob^[[31m] hi");
  deepStrictEqual(renderLine(line, { color: true }), "[\x1b[1;36mbob^[[31m\x1b[0m] hi");
  const at = new Date(2026, 0, 2, 9, 5);
  deepStrictEqual(clockTime(at), "09:05");
  deepStrictEqual(renderLine("x", { time: at }), "09:05 x");
  deepStrictEqual(
    renderLine([tone.error("e")], { color: true, time: at }),
    "\x1b[2m09:05 \x1b[0m\x1b[1;31me\x1b[0m",
  );
  deepStrictEqual(columns("a日😀\u0301"), 5);
});

const kinds = (keys: Key[]) => keys.map((k) => k.kind === "text" ? `"${k.text}"` : k.kind);

Deno.test("KeyDecoder.decode() reads arrows, Home/End, Delete and control keys, even split across reads", () => {
  const d = new KeyDecoder();
  deepStrictEqual(kinds(d.decode("ab\x1b[D\x1b[C\x1b[H\x1b[F\x1bOH\x1bOF\x1b[1~\x1b[4~\x1b[3~")), [
    '"ab"',
    "left",
    "right",
    "home",
    "end",
    "home",
    "end",
    "home",
    "end",
    "delete",
  ]);
  deepStrictEqual(kinds(d.decode("\x01\x05\x15\x17\x0b\x0c\x03\x04\x7f\x08\x10\x0e")), [
    "home",
    "end",
    "kill-start",
    "kill-word",
    "kill-end",
    "redraw",
    "interrupt",
    "eof",
    "backspace",
    "backspace",
    "up",
    "down",
  ]);
  deepStrictEqual(kinds(d.decode("x\x1b")), ['"x"']);
  deepStrictEqual(kinds(d.decode("[")), []);
  deepStrictEqual(kinds(d.decode("A")), ["up"]);
  deepStrictEqual(kinds(d.decode("\x1b[1;5C\x1b[1;5D\x1bb\x1bf")), [
    "word-right",
    "word-left",
    "word-left",
    "word-right",
  ]);
  deepStrictEqual(kinds(d.decode("a\r\nb\rc\n")), ['"a"', "enter", '"b"', "enter", '"c"', "enter"]);
  // Unknown sequences and other control characters never reach the buffer.
  deepStrictEqual(kinds(d.decode("\x1b[99~\x1bZ\x07\x1ftab\tend\x9b")), ['"Ztabend"']);
});

function typeKeys(editor: LineEditor, text: string) {
  return new KeyDecoder().decode(text).map((k) => editor.handle(k));
}

Deno.test("LineEditor.handle() edits with the cursor: insert, Left/Right, Home/End, Backspace/Delete, Ctrl+U/K/W", () => {
  const e = new LineEditor();
  typeKeys(e, "hello wrld\x1b[D\x1b[D\x1b[Do");
  deepStrictEqual([e.text, e.cursor], ["hello world", 8]);
  typeKeys(e, "\x01\x1b[3~");
  deepStrictEqual([e.text, e.cursor], ["ello world", 0]);
  typeKeys(e, "\x05\x7f");
  deepStrictEqual([e.text, e.cursor], ["ello worl", 9]);
  typeKeys(e, "\x17");
  deepStrictEqual(e.text, "ello ");
  typeKeys(e, "one two\x1b[1;5D\x15");
  deepStrictEqual([e.text, e.cursor], ["two", 0]);
  typeKeys(e, "\x1b[C\x0b");
  deepStrictEqual(e.text, "t");
  deepStrictEqual(typeKeys(e, "\x04").at(-1), { kind: "none" }); // Ctrl+D on text deletes (nothing here)
  deepStrictEqual(typeKeys(e, "\x15\x04").at(-1), { kind: "quit" }); // on an empty line it quits
  deepStrictEqual(typeKeys(e, "\x03").at(-1), { kind: "quit" });
  deepStrictEqual(typeKeys(e, "\x0c").at(-1), { kind: "redraw" });
  deepStrictEqual(typeKeys(e, "日本\r").at(-1), { kind: "submit", line: "日本" });
});

Deno.test("LineEditor history: Up/Down walk the last 500 lines and give back the draft", () => {
  const e = new LineEditor();
  for (let i = 0; i < HISTORY_LINES + 10; i++) typeKeys(e, `line ${i}\r`);
  deepStrictEqual(e.history.length, HISTORY_LINES);
  deepStrictEqual(e.history[0], "line 10");
  typeKeys(e, "draft\x1b[A");
  deepStrictEqual(e.text, `line ${HISTORY_LINES + 9}`);
  typeKeys(e, "\x1b[A\x1b[A");
  deepStrictEqual(e.text, `line ${HISTORY_LINES + 7}`);
  typeKeys(e, "\x1b[B\x1b[B\x1b[B");
  deepStrictEqual(e.text, "draft");
  typeKeys(e, "\x15\r   \r");
  deepStrictEqual(e.history.at(-1), `line ${HISTORY_LINES + 9}`, "blank lines are not kept");
  e.hidden = true;
  typeKeys(e, "password\r");
  deepStrictEqual(e.history.at(-1), `line ${HISTORY_LINES + 9}`, "hidden input is not kept");
});

Deno.test("LineEditor.view() scrolls a long line sideways so the cursor stays on screen", () => {
  const e = new LineEditor();
  typeKeys(e, "x".repeat(100));
  const view = e.view("> ", 40);
  deepStrictEqual(view.cursor, 39);
  deepStrictEqual(view.text, "> " + "x".repeat(37));
  typeKeys(e, "\x01");
  deepStrictEqual(e.view("> ", 40), { text: "> " + "x".repeat(37), cursor: 2 });
  e.hidden = true;
  deepStrictEqual(e.view("Password: ", 40), { text: "Password: ", cursor: 10 });
  deepStrictEqual(new LineEditor().view("[\x1b]", 40).text, "[^[]", "a prompt is shown safely too");
});

/** An interactive console over injected keys, with what it wrote. */
function fakeTerminal(options: { keepInput?: boolean } = {}) {
  let push!: (text: string) => void;
  let end!: () => void;
  const input = new ReadableStream<Uint8Array>({
    start(controller) {
      push = (text) => controller.enqueue(new TextEncoder().encode(text));
      end = () => controller.close();
    },
  });
  const output = bufferScreen();
  const out = new ClientConsole({
    interactive: true,
    input,
    output,
    prompt: "[Me] ",
    width: () => 80,
    now: () => new Date(2026, 0, 2, 14, 7),
    ...options,
  });
  return { out, output, push, end };
}

Deno.test("ClientConsole (interactive): an arriving line goes above and the half-typed input is redrawn intact", async () => {
  const { out, output, push, end } = fakeTerminal({ keepInput: true });
  const lines = out.lines();
  const first = lines.next();
  push("half");
  await new Promise((r) => setTimeout(r, 0));
  output.text = "";
  out.print(["[", tone.name("Kay"), "] hi\x1b[2J"], { received: true });
  deepStrictEqual(output.text, "\r\x1b[K14:07 [Kay] hi^[[2J\r\n\r[Me] half\x1b[K\r\x1b[9C");
  push(" done\r");
  deepStrictEqual((await first).value, "half done");
  ok(output.text.includes("\r\x1b[K[Me] half done\r\n"), "a kept line stays on screen");
  end();
  deepStrictEqual((await lines.next()).done, true);
  out.close();
});

Deno.test("ClientConsole.ask() with hidden: the answer is never written to the screen", async () => {
  const { out, output, push } = fakeTerminal();
  const answer = out.ask("Password: ", { hidden: true });
  push("s3cr");
  push("et\r");
  deepStrictEqual(await answer, "s3cret");
  ok(!output.text.includes("s3c"), JSON.stringify(output.text));
  ok(output.text.includes("Password: "));
  push("\x03"); // Ctrl+C ends the input
  deepStrictEqual((await out.lines().next()).done, true);
  out.close();
});

Deno.test("ClientConsole (plain): exact bytes, no timestamps or colours, control characters visible", async () => {
  const output = bufferScreen();
  const out = new ClientConsole({
    interactive: false,
    color: true,
    input: ReadableStream.from([new TextEncoder().encode("one\ntwo")]),
    output,
    plain: { prompt: "[Me] ", wipe: "\r    \r", promptAfterLine: true },
  });
  out.ready();
  out.print([tone.name("x\x1b[8m")], { received: true });
  out.printLines(["a", "b"], { received: true });
  deepStrictEqual(output.text, "[Me] \r    \rx^[[8m\n[Me] \r    \ra\nb\n[Me] ");
  deepStrictEqual(await Array.fromAsync(out.lines()), ["one", "two"]);
});

Deno.test("consoleFlags(): NO_COLOR (set, not empty) or --color never turn colours off; always wins", () => {
  const env = (value?: string) => (name: string) => name === "NO_COLOR" ? value : undefined;
  deepStrictEqual(consoleFlags({ color: "auto" }, env()), { color: true, timestamps: true });
  deepStrictEqual(consoleFlags({ color: "auto" }, env("1")).color, false);
  deepStrictEqual(consoleFlags({ color: "auto" }, env("")).color, true);
  deepStrictEqual(consoleFlags({ color: "never" }, env()).color, false);
  deepStrictEqual(consoleFlags({ color: "always" }, env("1")).color, true);
  deepStrictEqual(consoleFlags({ "no-timestamps": true }, env()).timestamps, false);
  throws(() => consoleFlags({ color: "rainbow" }, env()), UsageError);
});

Deno.test("runSession(): the first side to end decides; a goodbye's close is a quit; real errors are not swallowed", async () => {
  const never = () => new Promise<void>(() => {});
  let closed = 0;
  const close = () => void closed++;
  const open = Promise.withResolvers<void>(); // a connection whose reader ends when it is closed
  deepStrictEqual(
    await runSession({
      read: () => open.promise,
      type: async () => {},
      close: () => open.resolve(),
    }),
    { kind: "quit" },
  );
  deepStrictEqual(await runSession({ read: async () => {}, type: never, close }), {
    kind: "closed",
  });
  deepStrictEqual(
    await runSession({
      read: () => Promise.reject(new Deno.errors.ConnectionReset("x")),
      type: never,
      close,
    }),
    { kind: "closed" },
  );
  deepStrictEqual(
    await runSession({
      read: () => Promise.reject(new FrameError("bad", { offset: 0 })),
      type: never,
      close,
    }),
    { kind: "broken", reason: "Cannot decode frame: bad" },
  );
  deepStrictEqual(
    await runSession({
      read: never,
      type: () => Promise.reject(new Deno.errors.BrokenPipe("x")),
      close,
    }),
    { kind: "closed" },
  );
  // After the user's goodbye the server closes first: still a quit.
  const goodbye = Promise.withResolvers<void>();
  deepStrictEqual(
    await runSession({
      read: () => goodbye.promise,
      type: async (quitting) => {
        quitting();
        goodbye.resolve();
        await new Promise((r) => setTimeout(r, 1));
      },
      close,
    }),
    { kind: "quit" },
  );
  await rejects(
    runSession({ read: () => Promise.reject(new TypeError("bug")), type: never, close }),
    TypeError,
  );
  deepStrictEqual(closed, 6);
});

Deno.test("parseCommandLine() says 'Unknown option' plainly, takes --port -1 as a value, and names a missing value", () => {
  const spec = {
    name: "x",
    usage: "",
    summary: "",
    flags: {
      port: { type: "string" as const, description: "" },
      help: { type: "boolean" as const, description: "" },
    },
  };
  throws(() => parseCommandLine(["--bogus"], spec), { message: "Unknown option '--bogus'" });
  throws(() => parseCommandLine(["-x"], spec), { message: "Unknown option '-x'" });
  deepStrictEqual(parseCommandLine(["--port", "-1"], spec).values.port, "-1");
  throws(() => parseCommandLine(["--port"], spec), { message: "Option '--port' needs a value" });
  throws(() => parseCommandLine(["--port", "--help"], spec), {
    message: "Option '--port' needs a value",
  });
});
