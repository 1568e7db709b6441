/**
 * Directory load figures (issue: eurechat): logins per second at the default
 * hash cost, QUERY round trips per second with 1,000 bound users, the time
 * one liveness sweep takes over 1,000 bound peers of which 100 never answer,
 * and (SPEC 6.5) how long a legitimate login waits while another address
 * floods the directory with sign-ups, or with logins to its own accounts.
 *
 *   deno run -A bench/directory_load.ts [--hash-cost 15] [--logins 40] [--only flood]
 *
 * The flood needs IPv6 loopback: the directory listens on `::`, the flood
 * comes from `::1` and the legitimate client from 127.0.0.1, with
 * `--exempt ''` so loopback counts as a stranger.
 *
 * Everything runs on loopback and stops by itself.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { serveDirectory } from "../servers/directory.ts";
import { DirectoryClient, servePeer } from "../clients/eurechat.ts";
import { DEFAULT_HASH_COST } from "../servers/_accounts.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "hash-cost": { type: "string", default: String(DEFAULT_HASH_COST) },
    logins: { type: "string", default: "40" },
    queries: { type: "string", default: "20000" },
    "flood-attempts": { type: "string", default: "400" },
    only: { type: "string" },
  },
});
const cost = Number(values["hash-cost"]);
const port = (s: { addr: Deno.Addr }) => (s.addr as Deno.NetAddr).port;

if (!values.only || values.only === "flood") await floods();
if (values.only === "flood") Deno.exit(0);

// 1. Logins per second: new accounts (open sign-up), 8 at a time.
{
  await using directory = serveDirectory({
    port: 0,
    db: ":memory:",
    hashCost: cost,
    livenessIntervalMs: 0,
  });
  const total = Number(values.logins);
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < total) {
      const i = next++;
      await using c = await DirectoryClient.connect("127.0.0.1", port(directory));
      await c.login(`user${i}`, "password");
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `logins: ${total} in ${seconds.toFixed(2)} s = ${
      (total / seconds).toFixed(1)
    } logins/s (scrypt N=2^${cost}, r=8, p=1)`,
  );
}

// 2 and 3 share a directory with 1,000 bound users: 900 on a live peer, 100 on a silent one.
{
  await using directory = serveDirectory({
    port: 0,
    db: ":memory:",
    hashCost: 4,
    livenessIntervalMs: 0,
    livenessTimeoutMs: 5000,
    idleTimeoutMs: 0,
  });
  await using live = servePeer({ onMessage: () => {} });
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })();
  const sessions: DirectoryClient[] = [];
  for (let i = 0; i < 1000; i++) {
    const c = await DirectoryClient.connect("127.0.0.1", port(directory));
    await c.login(`peer${i}`, "pw");
    await c.bind("127.0.0.1", i < 900 ? port(live) : port(silent));
    sessions.push(c);
  }
  console.log(`bound users: ${directory.bindings.size}`);

  // QUERY round trips: 10 clients in parallel, each waits for its answer before the next.
  const total = Number(values.queries);
  let done = 0;
  let started = performance.now();
  await Promise.all(
    sessions.slice(0, 10).map(async (c, k) => {
      while (done < total) {
        done++;
        await c.query(k % 2 ? undefined : "peer500");
      }
    }),
  );
  let seconds = (performance.now() - started) / 1000;
  console.log(
    `QUERY round trips: ${total} in ${seconds.toFixed(2)} s = ${
      Math.round(total / seconds)
    }/s (half QUERY <name>, half full list of 1,000)`,
  );

  started = performance.now();
  const removed = await directory.checkLiveness();
  seconds = (performance.now() - started) / 1000;
  console.log(
    `liveness sweep: ${removed.length} of 1000 deregistered in ${
      seconds.toFixed(2)
    } s (timeout 5 s, 128 at once)`,
  );

  for (const c of sessions) await c.close();
  silent.close();
  await accepting;
  for (const c of held) c.close();
}

/** One login from `from`: connect, USER, PASS; resolves with the ms it took and the last reply. */
async function timedLogin(
  port: number,
  from: string,
  name: string,
  password: string,
): Promise<{ ms: number; ok: boolean; reply: string }> {
  const started = performance.now();
  try {
    await using c = await DirectoryClient.connect(from, port);
    await c.login(name, password);
    return { ms: performance.now() - started, ok: true, reply: "ok" };
  } catch (error) {
    return { ms: performance.now() - started, ok: false, reply: String(error) };
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Legitimate logins from 127.0.0.1, one after another, while `flood` runs from ::1. */
async function loginsDuring(port: number, flood: Promise<unknown>, label: string) {
  const times: number[] = [];
  let failed = 0;
  let running = true;
  void flood.finally(() => running = false);
  while (running || times.length < 5) {
    const login = await timedLogin(port, "127.0.0.1", "legit", "legit-password");
    if (login.ok) times.push(login.ms);
    else failed++;
    if (times.length + failed >= 200) break;
  }
  await flood;
  times.sort((a, b) => a - b);
  console.log(
    `${label}: legitimate login p50 ${percentile(times, 0.5).toFixed(0)} ms, p99 ${
      percentile(times, 0.99).toFixed(0)
    } ms, max ${times.at(-1)!.toFixed(0)} ms over ${times.length} logins (${failed} refused)`,
  );
}

/** `attempts` logins from ::1, 16 at a time (--max-per-ip); counts the replies. */
async function flood(port: number, attempts: number, name: (i: number) => string) {
  const replies = new Map<string, number>();
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < attempts) {
      const i = next++;
      const { reply } = await timedLogin(port, "::1", name(i), "flood-password");
      const kind = reply.replace(/\d+ seconds/, "N seconds");
      replies.set(kind, (replies.get(kind) ?? 0) + 1);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  return { replies, seconds };
}

async function floods() {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
  } catch {
    console.log("sign-up flood: skipped (no IPv6 loopback)");
    return;
  }
  await using directory = serveDirectory({
    hostname: "::",
    port: 0,
    db: ":memory:",
    hashCost: cost,
    livenessIntervalMs: 0,
    exempt: [],
  });
  const p = port(directory);
  await timedLogin(p, "127.0.0.1", "legit", "legit-password"); // the account exists
  for (let i = 0; i < 3; i++) await timedLogin(p, "::1", `own${i}`, "flood-password");
  const quiet = Promise.resolve();
  await loginsDuring(p, quiet, "no flood");
  const attempts = Number(values["flood-attempts"]);
  const signups = flood(p, attempts, (i) => `spam${i}-${crypto.randomUUID().slice(0, 8)}`);
  await loginsDuring(p, signups, `sign-up flood (${attempts} from ::1)`);
  const s = await signups;
  console.log(`  flood replies in ${s.seconds.toFixed(1)} s:`, Object.fromEntries(s.replies));
  const own = flood(p, attempts / 4, (i) => `own${i % 3}`);
  await loginsDuring(p, own, `login flood (${attempts / 4} to its own accounts from ::1)`);
  const o = await own;
  console.log(`  flood replies in ${o.seconds.toFixed(1)} s:`, Object.fromEntries(o.replies));
}
