// The page's state machine (clients/web/model.js), run under Deno without a browser.
import { deepStrictEqual, ok } from "node:assert/strict";
import { ChatModel, encodeLine, formatTime, parseLine, visible } from "../clients/web/model.js";

const at = new Date(2026, 11, 1, 9, 5);
const sends = (effects: { type: string; line?: string }[]) =>
  effects.filter((e) => e.type === "send").map((e) => e.line);

Deno.test("parseLine() and encodeLine() speak IM lines without the LF", () => {
  deepStrictEqual(encodeLine("REGISTER", ["alice", "online"]), 'REGISTER ["alice","online"]');
  deepStrictEqual(encodeLine("GOODBYE"), "GOODBYE");
  deepStrictEqual(parseLine('MESSAGE [1,"bob","a b"]'), {
    command: "MESSAGE",
    args: [1, "bob", "a b"],
  });
  deepStrictEqual(parseLine("LIST_CONVERSATIONS"), {
    command: "LIST_CONVERSATIONS",
    args: undefined,
  });
});

Deno.test("formatTime() and visible() show times and control characters as the terminal does", () => {
  deepStrictEqual(formatTime(at), "09:05");
  deepStrictEqual(visible("a\u001b[31mb\u007f\u0085\u202ec"), "a^[[31mb^?<U+0085><U+202E>c");
  deepStrictEqual(visible("two\nlines\tok", true), "two\nlines\tok");
  deepStrictEqual(visible("two\nlines"), "two^Jlines");
});

Deno.test("ChatModel.receive() signs in on the first ONLINE_USERS; an ERROR before it is a refusal", () => {
  const model = new ChatModel();
  deepStrictEqual(model.register("alice", "away"), 'REGISTER ["alice","away"]');
  deepStrictEqual(model.receive('ERROR "username alice is already taken"'), [
    { type: "sign-in-refused", text: "username alice is already taken" },
  ]);
  model.register("alice2", "away");
  deepStrictEqual(model.receive('ONLINE_USERS {"alice2":"away","bob":"online"}'), [
    { type: "signed-in" },
    { type: "online" },
  ]);
  ok(model.signedIn);
  deepStrictEqual(model.online, { alice2: "away", bob: "online" });
  deepStrictEqual(model.receive('ERROR "cannot invite x: not online"'), [
    { type: "error", text: "cannot invite x: not online" },
  ]);
  deepStrictEqual(model.receive("garbage {"), []);
});

Deno.test("ChatModel own invitations open at once; others wait to be accepted; messages count as unread", () => {
  const model = new ChatModel();
  model.register("alice", "online");
  model.receive('ONLINE_USERS {"alice":"online","bob":"online","carol":"online"}');
  deepStrictEqual(model.invite(["bob"]), 'INVITE ["bob"]');
  const own = model.receive('INVITATION [1,"alice"]');
  deepStrictEqual(sends(own), ["JOIN [1]", "LIST_CONVERSATIONS"]);
  deepStrictEqual(model.active, "1");
  deepStrictEqual(model.title(model.conversations.get("1")!), "bob");
  deepStrictEqual(model.receive('INVITATION [2,"carol"]'), [
    { type: "invitation", id: "2", inviter: "carol" },
  ]);
  deepStrictEqual(sends(model.join("2")), ["JOIN [2]", "LIST_CONVERSATIONS"]);
  deepStrictEqual(model.invitations.size, 0);
  // Conversation 2 is the one in view: its messages are read; conversation 1's are not.
  model.receive('MESSAGE [1,"alice","mine"]', { now: at, visibleId: "2" });
  model.receive('MESSAGE [2,"carol","seen"]', { now: at, visibleId: "2" });
  model.receive('MESSAGE [1,"bob","unseen"]', { now: at, visibleId: "2" });
  const one = model.conversations.get("1")!;
  deepStrictEqual(one.history.map((e) => [e.sender, e.text, e.own]), [
    ["alice", "mine", true],
    ["bob", "unseen", false],
  ]);
  deepStrictEqual([one.unread, model.conversations.get("2")!.unread, model.unread()], [2, 0, 2]);
  // A message still on its way when we left does not bring the conversation back.
  deepStrictEqual(model.leave("1"), ["LEAVE [1]"]);
  deepStrictEqual(model.receive('MESSAGE [1,"bob","late"]'), []);
  ok(!model.conversations.has("1"));
});

Deno.test("ChatModel asks for members when someone comes or goes, and every 30 s otherwise", () => {
  const model = new ChatModel();
  model.register("alice", "online");
  const t = (s: number) => new Date(at.getTime() + s * 1000);
  model.receive('ONLINE_USERS {"alice":"online","bob":"online"}', { now: t(0) });
  model.receive('INVITATION [1,"alice"]');
  const asks = (line: string, s: number) => sends(model.receive(line, { now: t(s) }));
  deepStrictEqual(asks('ONLINE_USERS {"alice":"online","bob":"away"}', 1), ["LIST_CONVERSATIONS"]);
  deepStrictEqual(asks('ONLINE_USERS {"alice":"online","bob":"busy"}', 11), []);
  deepStrictEqual(asks('ONLINE_USERS {"alice":"online"}', 12), ["LIST_CONVERSATIONS"]);
  deepStrictEqual(asks('ONLINE_USERS {"alice":"online"}', 22), []);
  deepStrictEqual(asks('ONLINE_USERS {"alice":"online"}', 42), ["LIST_CONVERSATIONS"]);
});

Deno.test("ChatModel member changes become notices; a lost connection ends every conversation", () => {
  const model = new ChatModel();
  model.register("alice", "online");
  model.receive('ONLINE_USERS {"alice":"online"}');
  model.receive('INVITATION [1,"alice"]');
  model.receive('CONVERSATIONS {"1":["alice"]}', { now: at });
  deepStrictEqual(model.conversations.get("1")!.members, ["alice"]);
  // A message from someone not yet listed: they joined (and the list is asked for again).
  const effects = model.receive('MESSAGE [1,"bob","hi"]', { now: at });
  deepStrictEqual(sends(effects), ["LIST_CONVERSATIONS"]);
  model.receive('CONVERSATIONS {"1":["alice","carol"]}', { now: at });
  deepStrictEqual(
    model.conversations.get("1")!.history.map((e) => `${e.kind}: ${e.text}`),
    ["notice: bob joined", "message: hi", "notice: carol joined", "notice: bob left"],
  );
  deepStrictEqual(model.title(model.conversations.get("1")!), "carol");
  // It keeps its history under a key of its own: a restarted server counts from 1 again.
  deepStrictEqual(model.disconnected(at), [["1", "1-ended1"]]);
  const ended = model.conversations.get("1-ended1")!;
  ok(ended.ended && ended.label === "1" && !model.signedIn && model.active === "1-ended1");
  model.register("alice", "online");
  model.receive('ONLINE_USERS {"alice":"online"}');
  model.receive('INVITATION [1,"alice"]');
  deepStrictEqual([...model.conversations.keys()], ["1-ended1", "1"]);
  deepStrictEqual(model.leave("1"), ["LEAVE [1]"]);
  // An ended conversation is closed without a LEAVE.
  deepStrictEqual(model.leave("1-ended1"), []);
  deepStrictEqual(model.conversations.size, 0);
});

Deno.test("clients/web/app.js and model.js type-check against the DOM (their JSDoc types hold)", async () => {
  // In a program of their own: the DOM types do not mix with Deno's, so `deno check .` skips them.
  const dir = await Deno.makeTempDir({ prefix: "parley-web-check-" });
  try {
    for (const name of ["app.js", "model.js"]) {
      const text = await Deno.readTextFile(new URL(`../clients/web/${name}`, import.meta.url));
      const header = name === "app.js" ? '// @ts-check\n/// <reference lib="dom" />\n' : "";
      await Deno.writeTextFile(`${dir}/${name}`, header + text);
    }
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", "--no-config", `${dir}/app.js`],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const errors = new TextDecoder().decode(output.stderr);
    ok(output.success, errors);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
