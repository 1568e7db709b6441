/**
 * Hostile-room figures (issue 11, SPEC.md 6.4), against the real entry points:
 *
 * - channel: server RSS before, after CREATES `/create` attempts from one
 *   stranger, and after it left; a normal pair's chat round trip (p50/p99)
 *   during the flood;
 * - IM: server RSS before, after INVITES `INVITE`s from one spammer, and after
 *   it left; a normal pair's round trip during the flood;
 * - IM: the ONLINE_USERS bytes pushed while REGISTRATIONS users register at
 *   once, and the time until everyone sees everyone.
 *
 *   deno run -A bench/hostile_rooms.ts [--creates 200000] [--invites 200000]
 *     [--registrations 1500] [--rounds 2] [--root DIR] [--only channel|invites|registrations]
 *
 * Each flood runs `--rounds` times, one fresh stranger after the other, so the
 * RSS of the second round shows whether the first left anything behind.
 * `--root` runs the servers of another checkout (the code before a fix, say).
 * Loopback only; every phase is bounded in count and in time (60 s) and the
 * script stops by itself.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { encodeIm, type ImClientMessage, ImLineDecoder, parseImLine } from "../protocols/im.ts";
import type { FrameDecoder } from "../protocols/frames.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    creates: { type: "string", default: "200000" },
    invites: { type: "string", default: "200000" },
    registrations: { type: "string", default: "1500" },
    rounds: { type: "string", default: "2" },
    only: { type: "string", default: "" },
    root: { type: "string", default: new URL("..", import.meta.url).pathname },
  },
});
const CREATES = Number(values.creates);
const INVITES = Number(values.invites);
const REGISTRATIONS = Number(values.registrations);
const ROUNDS = Number(values.rounds);
const PHASE_MS = 60_000;

/** A server entry point started as a child process. */
async function start(script: string, args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `${values.root}/${script}`, "--port", "0", ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  while (!/Listening on [\d.]+:(\d+)/.test(log)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script} exited:\n${log}`);
    log += value;
  }
  const port = Number(/Listening on [\d.]+:(\d+)/.exec(log)![1]);
  const drained = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const stderr = child.stderr.pipeTo(new WritableStream());
  return {
    port,
    async rssMiB(): Promise<number> {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
    },
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drained;
      await stderr;
    },
  };
}

/** A client socket whose decoded frames are handed out in order. */
class Client<T> {
  conn!: Deno.TcpConn;
  frames: T[] = [];
  bytes = 0;
  #waiters: (() => void)[] = [];
  closed = false;

  static async open<T>(port: number, decoder: FrameDecoder<T>, keep = true): Promise<Client<T>> {
    const c = new Client<T>();
    c.conn = await Deno.connect({ hostname: "127.0.0.1", port });
    c.conn.setNoDelay(true);
    (async () => {
      const buf = new Uint8Array(256 * 1024);
      while (true) {
        const n = await c.conn.read(buf).catch(() => null);
        if (n === null) break;
        c.bytes += n;
        const frames = decoder.decode(buf.subarray(0, n));
        if (keep) c.frames.push(...frames);
        else c.onFrames?.(frames);
        for (const w of c.#waiters.splice(0)) w();
      }
      c.closed = true;
      for (const w of c.#waiters.splice(0)) w();
    })();
    return c;
  }

  onFrames?: (frames: T[]) => void;

  async write(bytes: Uint8Array): Promise<void> {
    for (let o = 0; o < bytes.length;) o += await this.conn.write(bytes.subarray(o));
  }

  /** Waits until `check()` holds (false after `ms`). */
  async until(check: () => boolean, ms = PHASE_MS): Promise<boolean> {
    const deadline = performance.now() + ms;
    while (!check()) {
      const left = deadline - performance.now();
      if (left <= 0 || this.closed) return check();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return true;
  }

  /** The first frame matching `match`, removed (undefined after `ms`). */
  async take(match: (f: T) => boolean, ms = PHASE_MS): Promise<T | undefined> {
    if (!await this.until(() => this.frames.some(match), ms)) return undefined;
    return this.frames.splice(this.frames.findIndex(match), 1)[0];
  }

  close() {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const ms = (x: number) => x.toFixed(2);

/** Round trips of `ping` measured while `attack` runs (and at least 20). */
async function pingDuring(attack: Promise<unknown>, ping: () => Promise<number>) {
  let done = false;
  attack.finally(() => done = true);
  const rtts: number[] = [];
  const deadline = performance.now() + PHASE_MS;
  while ((!done || rtts.length < 20) && performance.now() < deadline) rtts.push(await ping());
  await attack;
  rtts.sort((a, b) => a - b);
  return `p50_ms=${ms(percentile(rtts, 0.5))} p99_ms=${
    ms(percentile(rtts, 0.99))
  } pings=${rtts.length}`;
}

async function channelFlood() {
  const server = await start("servers/channel.ts", []);
  const chan = (port: number) => Client.open(port, new ChannelDecoder());
  for (let round = 1; round <= ROUNDS; round++) {
    // A fresh pair each round (the code before the fix drops the victim).
    const home = `home${round}`;
    const victim = await chan(server.port);
    const friend = await chan(server.port);
    await victim.write(encodeChannelFrame("Victim"));
    await victim.write(encodeChannelFrame(`/create ${home}`));
    await friend.write(encodeChannelFrame("Friend"));
    await friend.write(encodeChannelFrame(`/join ${home}`));
    await victim.take((f) => f === "Friend has joined");
    const before = await server.rssMiB();
    const attacker = await Client.open(server.port, new ChannelDecoder(), false);
    const flood = (async () => {
      await attacker.write(encodeChannelFrame("Spammer"));
      const BATCH = 1000;
      for (let sent = 0; sent < CREATES; sent += BATCH) {
        const n = Math.min(BATCH, CREATES - sent);
        const batch = new Uint8Array(n * 200);
        for (let i = 0; i < n; i++) {
          batch.set(encodeChannelFrame(`/create spam-${round}-${sent + i}`), i * 200);
        }
        await attacker.write(batch);
      }
    })();
    let k = 0;
    const latency = await pingDuring(flood, async () => {
      const text = `ping ${k++}`;
      const t0 = performance.now();
      await victim.write(encodeChannelFrame(text));
      await friend.take((f) => f === `[Victim] ${text}`);
      return performance.now() - t0;
    });
    // The /list reply comes after every /create the server read before it.
    await victim.write(encodeChannelFrame("/list")).catch(() => {});
    await victim.take((f) => f.startsWith(home));
    await victim.until(() => false, 500); // the rest of the reply, if it has several frames
    const listed = victim.closed ? "victim_dropped" : String(victim.frames.length + 1);
    const during = await server.rssMiB();
    attacker.close();
    await new Promise((r) => setTimeout(r, 2000));
    let list = "(friend dropped)";
    if (!friend.closed) {
      friend.frames.length = 0;
      await friend.write(encodeChannelFrame("/list"));
      list = JSON.stringify((await friend.take(() => true, 5000))?.slice(0, 40));
    }
    const after = await server.rssMiB();
    console.log(
      `RESULT channel round=${round} creates=${CREATES} rss_before_mib=${ms(before)} ` +
        `rss_spammer_on_mib=${ms(during)} rss_after_left_mib=${ms(after)} ` +
        `list_frames_while_on=${listed} list_after_left=${list} ${latency}`,
    );
    victim.close();
    friend.close();
  }
  await server.stop();
}

type Im = ReturnType<typeof parseImLine>;
const imDecoder = (): FrameDecoder<Im> => {
  const lines = new ImLineDecoder({ maxLineBytes: 64 * 1024 * 1024 });
  return { decode: (c) => lines.decode(c).map(parseImLine), end() {} };
};
const im = async (port: number, name?: string, keep = true) => {
  const c = await Client.open(port, imDecoder(), keep);
  if (name) {
    await c.write(encodeIm({ command: "REGISTER", username: name, status: "on" }));
  }
  return c;
};
const send = (c: Client<Im>, m: ImClientMessage) => c.write(encodeIm(m));

async function imFlood() {
  const server = await start("servers/im.ts", ["--presence-interval", "0"]);
  for (let round = 1; round <= ROUNDS; round++) {
    // A fresh pair each round (the code before the fix drops a victim whose list is too long).
    const [a, b] = [`alice${round}`, `bob${round}`];
    const alice = await im(server.port, a);
    const bob = await im(server.port, b);
    await alice.take((m) => m.command === "ONLINE_USERS" && b in m.users);
    await send(alice, { command: "INVITE", users: [b] });
    const invitation = await bob.take((m) => m.command === "INVITATION");
    const id = (invitation as { conversation: number }).conversation;
    await send(bob, { command: "JOIN", conversation: id });
    await send(alice, { command: "JOIN", conversation: id });
    let replies = 0;
    const spammer = await im(server.port, undefined, false);
    spammer.onFrames = (frames) => {
      for (const f of frames) if (f.command === "INVITATION" || f.command === "ERROR") replies++;
    };
    alice.frames.length = 0;
    await send(spammer, { command: "REGISTER", username: `spammer${round}`, status: "on" });
    await alice.take((m) => m.command === "ONLINE_USERS" && `spammer${round}` in m.users);
    const before = await server.rssMiB();
    const flood = (async () => {
      const line = encodeIm({ command: "INVITE", users: [a] });
      const BATCH = 2000;
      for (let sent = 0; sent < INVITES; sent += BATCH) {
        const n = Math.min(BATCH, INVITES - sent);
        const batch = new Uint8Array(n * line.length);
        for (let i = 0; i < n; i++) batch.set(line, i * line.length);
        await spammer.write(batch);
      }
    })();
    // alice reads her invitations as they come; she keeps only what the bench needs.
    const keep = setInterval(() => {
      alice.frames = alice.frames.filter((m) => m.command !== "INVITATION");
    }, 50);
    let k = 0;
    const latency = await pingDuring(flood, async () => {
      const message = `ping ${k++}`;
      const t0 = performance.now();
      await send(bob, { command: "SEND_MESSAGE", conversation: id, message });
      await alice.take((m) => m.command === "MESSAGE" && m.message === message);
      return performance.now() - t0;
    });
    const deadline = performance.now() + PHASE_MS;
    while (replies < INVITES && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const during = await server.rssMiB();
    alice.frames.length = 0;
    spammer.close();
    await alice.take((m) => m.command === "ONLINE_USERS" && !(`spammer${round}` in m.users));
    await send(alice, { command: "LIST_CONVERSATIONS" }).catch(() => {});
    const list = await alice.take((m) => m.command === "CONVERSATIONS", 10_000);
    const remaining = list
      ? String(Object.keys((list as { conversations: object }).conversations).length)
      : alice.closed
      ? "victim_dropped"
      : "no_reply";
    await new Promise((r) => setTimeout(r, 1000));
    const after = await server.rssMiB();
    clearInterval(keep);
    console.log(
      `RESULT im round=${round} invites=${INVITES} replies=${replies} rss_before_mib=${
        ms(before)
      } rss_spammer_on_mib=${ms(during)} rss_after_left_mib=${ms(after)} ` +
        `conversations_after_left=${remaining} ${latency}`,
    );
    alice.close();
    bob.close();
  }
  await server.stop();
}

/** Line lengths only (no decoding): the registration phase must not be bound by the bench's own parsing. */
class LineLengths implements FrameDecoder<number> {
  #current = 0;
  decode(chunk: Uint8Array): number[] {
    const out: number[] = [];
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, from)) {
      out.push(this.#current + nl - from);
      this.#current = 0;
      from = nl + 1;
    }
    this.#current += chunk.length - from;
    return out;
  }
  end() {}
}

async function imRegistrations() {
  const server = await start("servers/im.ts", ["--presence-interval", "0"]);
  // Every user's status is "on": the full list has the same length in any order.
  const everyone = Object.fromEntries(
    Array.from({ length: REGISTRATIONS }, (_, i) => [`u${i}`, "on"]),
  );
  const fullLength = encodeIm({ command: "ONLINE_USERS", users: everyone }).length - 1;
  const clients: Client<number>[] = [];
  let complete = 0;
  const t0 = performance.now();
  const deadline = t0 + PHASE_MS;
  for (let i = 0; i < REGISTRATIONS && performance.now() < deadline; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, REGISTRATIONS - i) }, async (_, j) => {
      const c = await Client.open(server.port, new LineLengths(), false);
      let full = false;
      c.onFrames = (lengths) => {
        if (!full && lengths.includes(fullLength)) {
          full = true;
          complete++;
        }
      };
      clients.push(c);
      await c.write(encodeIm({ command: "REGISTER", username: `u${i + j}`, status: "on" }));
    }));
  }
  while (complete < REGISTRATIONS && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const secs = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 500)); // whatever is still on its way
  const bytes = clients.reduce((n, c) => n + c.bytes, 0);
  console.log(
    `RESULT im registrations=${REGISTRATIONS} everyone_sees_everyone=${complete}/${REGISTRATIONS} ` +
      `secs=${secs.toFixed(2)} online_users_bytes=${bytes} (${(bytes / 2 ** 20).toFixed(1)} MiB)`,
  );
  for (const c of clients) c.close();
  await server.stop();
}

const watchdog = setTimeout(() => {
  console.error("TIMEOUT: the run did not finish in 8 minutes");
  Deno.exit(1);
}, 8 * 60_000);
const only = values.only;
if (!only || only === "channel") await channelFlood();
if (!only || only === "invites") await imFlood();
if (!only || only === "registrations") await imRegistrations();
clearTimeout(watchdog);
