/**
 * The directory's session state machine, without sockets: messages and events
 * in, actions out.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import {
  type Binding,
  DirectoryCore,
  type DirectoryCoreOptions,
  type SessionAction,
} from "../servers/_directory_session.ts";
import { LoginThrottle, RateLimiter } from "../servers/_accounts.ts";
import {
  DIRECTORY_MAX_RESULT_BYTES,
  DIRECTORY_TEXTS,
  type EurechatMessage,
} from "../protocols/eurechat.ts";

const msg = (type: string, ...args: string[]): EurechatMessage => ({
  type,
  args,
  payload: new Uint8Array(),
});

function show(action: SessionAction): string {
  switch (action.kind) {
    case "reply":
      return `${action.type} ${action.text}`;
    case "close":
      return "close";
    case "registered":
      return "registered";
    case "login":
      return `login ${action.name} ${action.password}${action.create ? " create" : ""}`;
    case "probe":
      return `probe ${action.addr}:${action.port}`;
  }
}

/** A directory core with a fake clock and account list, and sessions whose actions are recorded. */
function directory(options: Partial<DirectoryCoreOptions> = {}) {
  let now = 0;
  const accounts = new Set<string>();
  const core = new DirectoryCore({
    throttle: new LoginThrottle({ maxFailures: 2, maxAddressFailures: 4, now: () => now }),
    signups: new RateLimiter({ max: 3, now: () => now }),
    accountExists: (name) => accounts.has(name),
    isExempt: (address) => address === "127.0.0.1",
    ownPorts: [8888],
    ...options,
  });
  const open = (address = "10.0.0.1") => {
    const out: string[] = [];
    const session = core.open({ address, label: `${address}:40000` }, (a) => out.push(show(a)));
    const take = () => out.splice(0);
    return {
      session,
      take,
      say: (type: string, ...args: string[]) => {
        session.receive(msg(type, ...args));
        return take();
      },
      /** USER + PASS + a successful hash. */
      login: (name: string) => {
        accounts.add(name); // an existing account: no sign-up limit
        session.receive(msg("USER", name));
        session.receive(msg("PASS", "pw"));
        session.loginDone("ok");
        const replies = take();
        deepStrictEqual(replies.slice(-2), ["ACK successfully authenticated", "registered"]);
      },
    };
  };
  return { core, open, accounts, tick: (ms: number) => now += ms };
}

Deno.test("DirectorySession runs the SPEC.md 1.2 session: USER, PASS, BIND with a port test, QUERY, LEAVE", () => {
  const { core, open } = directory();
  const a = open("10.0.0.1");
  deepStrictEqual(a.say("USER", "corrado"), ["ACK hi corrado, authentication required"]);
  deepStrictEqual(a.say("PASS", "mypass"), ["login corrado mypass create"]);
  ok(a.session.busy);
  a.session.loginDone("ok");
  deepStrictEqual(a.take(), ["ACK successfully authenticated", "registered"]);
  deepStrictEqual(a.say("BIND", "10.0.0.1", "5555"), ["probe 10.0.0.1:5555"]);
  a.session.probeDone(true);
  deepStrictEqual(a.take(), ["ACK bound successfully to 10.0.0.1:5555"]);
  deepStrictEqual(a.say("QUERY"), ["RESULT corrado,10.0.0.1,5555"]);
  deepStrictEqual(a.say("QUERY", "nobody"), ["RESULT "]);
  deepStrictEqual(a.say("LEAVE"), ["ACK deregistered from directory"]);
  deepStrictEqual(core.bindings.size, 0);
  deepStrictEqual(a.say("FOO"), ["ERR I did not understand the message FOO", "close"]);
  ok(a.session.closed);
  deepStrictEqual(a.say("QUERY"), [], "a closed session takes no more input");
});

Deno.test("DirectorySession keeps messages that arrive during a hash or a port test, in order", () => {
  const { open } = directory();
  const a = open();
  a.say("USER", "pipe");
  a.say("PASS", "pw");
  deepStrictEqual(a.say("BIND", "10.0.0.1", "5555"), []);
  deepStrictEqual(a.say("QUERY"), []);
  deepStrictEqual(a.session.backlog, 2);
  a.session.loginDone("ok");
  deepStrictEqual(a.take(), [
    "ACK successfully authenticated",
    "registered",
    "probe 10.0.0.1:5555",
  ]);
  a.session.probeDone(true);
  deepStrictEqual(a.take(), [
    "ACK bound successfully to 10.0.0.1:5555",
    "RESULT pipe,10.0.0.1,5555",
  ]);
});

Deno.test("DirectorySession refuses a name that breaks SPEC.md 6.3 like a missing USER argument", () => {
  const { open } = directory();
  const bad = [
    "",
    "bell\x07",
    "del\x7f",
    "c1\u0085",
    "bidi\u202e",
    "iso\u2066",
    "a,b",
    "wide\u3000space",
    "x".repeat(33),
    "é".repeat(17), // 34 bytes
    "lone\ud800",
  ];
  for (const name of bad) {
    const a = open();
    deepStrictEqual(a.say("USER", name), [`ERR ${DIRECTORY_TEXTS.userExpected}`, "close"], name);
  }
  for (const name of ["x".repeat(32), "é".repeat(16), "Zoë😀", "a-b_c.d"]) {
    deepStrictEqual(open().say("USER", name), [`ACK hi ${name}, authentication required`]);
  }
});

Deno.test("DirectorySession accepts BIND ports 1024-65535 except the directory's own", () => {
  const { open } = directory({ ownPorts: [8888] });
  const cases: [string, boolean][] = [
    ["25", false],
    ["1023", false],
    ["0", false],
    ["65536", false],
    ["8888", false],
    ["1024", true],
    ["65535", true],
    ["5555x", false],
  ];
  for (const [port, accepted] of cases) {
    const a = open();
    a.login(`p${port}`);
    deepStrictEqual(
      a.say("BIND", "10.0.0.1", port),
      accepted ? [`probe 10.0.0.1:${port}`] : [`ERR ${DIRECTORY_TEXTS.invalidBind}`, "close"],
      port,
    );
  }
  // An address that is not the peer's own, or not an address at all, is refused too.
  for (const addr of ["10.0.0.2", "a,b", "x".repeat(65)]) {
    const a = open();
    a.login("addr");
    deepStrictEqual(a.say("BIND", addr, "5555"), [`ERR ${DIRECTORY_TEXTS.invalidBind}`, "close"]);
  }
});

Deno.test("DirectorySession: --max-bound refuses a new name's BIND, before and after the port test, not a rebind", () => {
  const { core, open } = directory({ maxBound: 2 });
  const bind = (name: string) => {
    const a = open();
    a.login(name);
    deepStrictEqual(a.say("BIND", "10.0.0.1", "5555"), ["probe 10.0.0.1:5555"]);
    return a;
  };
  const one = bind("one");
  const two = bind("two");
  const three = bind("three"); // all three tests in flight at once
  one.session.probeDone(true);
  two.session.probeDone(true);
  three.session.probeDone(true);
  deepStrictEqual(three.take(), [`ERR ${DIRECTORY_TEXTS.full}`, "close"]);
  deepStrictEqual([...core.bindings.keys()], ["one", "two"]);
  const four = open();
  four.login("four");
  deepStrictEqual(four.say("BIND", "10.0.0.1", "5555"), [`ERR ${DIRECTORY_TEXTS.full}`, "close"]);
  deepStrictEqual(one.take(), ["ACK bound successfully to 10.0.0.1:5555"]);
  deepStrictEqual(one.say("BIND", "10.0.0.1", "6666"), ["probe 10.0.0.1:6666"]);
  one.session.probeDone(true);
  deepStrictEqual(one.take(), ["ACK bound successfully to 10.0.0.1:6666"]);
});

Deno.test("DirectoryCore.query() fits in 1 MiB at the caps: 10,000 names of 32 bytes with 64-byte addresses", () => {
  const { core } = directory();
  const fill = (count: number) => {
    core.bindings.clear();
    const addr = "a".repeat(64);
    for (let i = 0; i < count; i++) {
      core.bindings.set(String(i).padStart(32, "n"), { addr, port: 65535 } satisfies Binding);
    }
  };
  fill(10_000);
  const full = core.query();
  const bytes = new TextEncoder().encode(full).length;
  ok(bytes <= DIRECTORY_MAX_RESULT_BYTES, `${bytes} bytes`);
  deepStrictEqual(full.split("\n").length, 10_000);
  // Past the caps (a larger --max-bound) the answer stops at the last whole line that fits.
  fill(11_000);
  const cut = core.query();
  ok(new TextEncoder().encode(cut).length <= DIRECTORY_MAX_RESULT_BYTES);
  const lines = cut.split("\n");
  ok(lines.length > 10_000 && lines.length < 11_000);
  ok(lines.every((line) => /^n*\d+,a{64},65535$/.test(line)));
});

Deno.test("DirectorySession: a second login of a name takes it over; the old session cannot touch the binding", () => {
  const { core, open } = directory();
  const old = open();
  old.login("alice");
  old.say("BIND", "10.0.0.1", "5555");
  old.session.probeDone(true);
  old.take();
  deepStrictEqual(old.say("BIND", "10.0.0.1", "6666"), ["probe 10.0.0.1:6666"]);
  old.say("LEAVE"); // waits behind the port test
  const now = open("10.0.0.1");
  now.login("alice");
  deepStrictEqual(old.take(), [`ERR ${DIRECTORY_TEXTS.takenOver}`, "close"]);
  old.session.probeDone(true); // the old session's test ends after the takeover
  deepStrictEqual(old.take(), []);
  deepStrictEqual(core.bindings.get("alice"), { addr: "10.0.0.1", port: 5555 });
  old.session.end();
  deepStrictEqual(core.holder("alice"), now.session, "the old session ending releases nothing");
  deepStrictEqual(now.say("LEAVE"), ["ACK deregistered from directory"]);
  deepStrictEqual(core.bindings.size, 0);
  now.session.end();
  deepStrictEqual(core.holders, 0);
});

Deno.test("DirectorySession: failures lock out (address, name) and address, never the name elsewhere", () => {
  const { open } = directory();
  const guess = (address: string, name: string) => {
    const a = open(address);
    a.say("USER", name);
    const asked = a.say("PASS", "guess");
    if (asked[0].startsWith("login")) a.session.loginDone("failed");
    return [...asked, ...a.take()].filter((line) => line !== "close").at(-1);
  };
  deepStrictEqual(guess("6.6.6.6", "victim"), `ERR ${DIRECTORY_TEXTS.authFailed}`);
  deepStrictEqual(guess("6.6.6.6", "victim"), `ERR ${DIRECTORY_TEXTS.authFailed}`);
  deepStrictEqual(guess("6.6.6.6", "victim"), `ERR ${DIRECTORY_TEXTS.throttled(60)}`);
  const victim = open("10.0.0.1");
  victim.login("victim");
});

Deno.test("DirectorySession: at most --signups-per-minute new accounts per address; exempt addresses are not counted", () => {
  const { open, accounts, tick } = directory();
  const signUp = (address: string, name: string) => {
    const a = open(address);
    a.say("USER", name);
    return a.say("PASS", "pw")[0];
  };
  for (let i = 0; i < 3; i++) {
    deepStrictEqual(signUp("6.6.6.6", `new${i}`), `login new${i} pw create`);
  }
  deepStrictEqual(signUp("6.6.6.6", "new3"), `ERR ${DIRECTORY_TEXTS.signupLimit(60)}`);
  accounts.add("known");
  deepStrictEqual(signUp("6.6.6.6", "known"), "login known pw", "logging in is not a sign-up");
  deepStrictEqual(signUp("10.0.0.1", "other"), "login other pw create");
  for (let i = 0; i < 10; i++) {
    deepStrictEqual(signUp("127.0.0.1", `l${i}`), `login l${i} pw create`);
  }
  tick(60_001);
  deepStrictEqual(signUp("6.6.6.6", "later"), "login later pw create");
  const closed = directory({ signup: "closed" });
  const c = closed.open();
  c.say("USER", "ghost");
  deepStrictEqual(c.say("PASS", "pw"), ["login ghost pw"]);
});

Deno.test("DirectorySession: a full hash queue and a hang-up while the hash waits", () => {
  const { open } = directory();
  const busy = open();
  busy.say("USER", "b");
  busy.say("PASS", "pw");
  busy.session.loginDone("busy");
  deepStrictEqual(busy.take(), [`ERR ${DIRECTORY_TEXTS.busy}`, "close"]);
  const gone = open();
  gone.say("USER", "g");
  gone.say("PASS", "pw");
  gone.session.loginDone("gone");
  deepStrictEqual(gone.take(), ["close"]);
});
