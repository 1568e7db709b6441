/**
 * CRC registration flood (issue 12, SPEC 6.4 "absorbing N registrations costs
 * O(N) in total"): one raw server link sends N client registrations in one go
 * to a real node process; meanwhile a normal client registers. Prints, per N,
 * the time until the node knows all N hosts, the normal client's welcome
 * latency during the flood, and how long SIGTERM takes right after.
 *
 *   deno run --allow-net --allow-run --allow-read bench/crc_registrations.ts [N ...]
 *   NODE=/path/to/other/servers/crc_node.ts deno run ... (compare another checkout)
 *
 * Loopback only; each step is bounded (60 s) and stops its node.
 *
 * @module
 */

import { CrcDecoder, type CrcMessage, encodeCrc } from "../protocols/crc.ts";
import { concatBytes } from "../net/bytes.ts";

const counts = Deno.args.length ? Deno.args.map(Number) : [10_000, 20_000, 40_000, 80_000];
const node = Deno.env.get("NODE") ?? new URL("../servers/crc_node.ts", import.meta.url).pathname;
const LIMIT_MS = 60_000;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function connect(port: number): Promise<Deno.TcpConn> {
  for (let i = 0; i < 200; i++) {
    try {
      return await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`the node on ${port} did not start`);
}

/** Reads frames from `conn` until `until` returns true for one (or the stream ends). */
async function readUntil(conn: Deno.Conn, until: (m: CrcMessage) => boolean): Promise<boolean> {
  const decoder = new CrcDecoder();
  const buffer = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return false;
    if (decoder.decode(buffer.subarray(0, n)).some(until)) return true;
  }
}

async function clientsKnown(admin: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  return Number(/parley_crc_hosts\{kind="client"\} (\d+)/.exec(text)?.[1] ?? 0);
}

async function step(count: number): Promise<string> {
  const port = freePort();
  const admin = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      node,
      "--id",
      "1",
      "--port",
      String(port),
      "--admin",
      `127.0.0.1:${admin}`,
      "--log-level",
      "warning",
      // The default --max-hosts (100000) counts the flooding server and the normal client too.
      ...(Deno.env.get("NODE") ? [] : ["--max-hosts", "1000000"]),
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const attacker = await connect(port);
    await attacker.write(
      encodeCrc({ kind: "server_registration", source: 66, lastHop: 0, name: "flood", info: "" }),
    );
    const draining = readUntil(attacker, () => false); // take the node's dump and forwards
    const frames = Array.from(
      { length: count },
      (_, i) =>
        encodeCrc({
          kind: "client_registration",
          source: 10_000 + i,
          lastHop: 66,
          name: `f${i}`,
          info: "",
        }),
    );
    const all = concatBytes(frames);
    await connect(admin).then((c) => c.close());
    const start = performance.now();
    const writing = attacker.write(all).catch(() => 0);
    await new Promise((r) => setTimeout(r, 5));
    const normal = await Deno.connect({ hostname: "127.0.0.1", port });
    const asked = performance.now();
    await normal.write(
      encodeCrc({ kind: "client_registration", source: 7, lastHop: 0, name: "normal", info: "" }),
    );
    const giveUp = setTimeout(() => normal.close(), LIMIT_MS);
    const welcomed = await readUntil(normal, (m) => m.kind === "status" && m.destination === 7);
    clearTimeout(giveUp);
    const welcomeMs = performance.now() - asked;
    await writing;
    let absorbed = NaN;
    while (performance.now() - start < LIMIT_MS) {
      if ((await clientsKnown(admin)) >= count + 1) {
        absorbed = (performance.now() - start) / 1000;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const stopAt = performance.now();
    child.kill("SIGTERM");
    const status = await child.status;
    const stopMs = performance.now() - stopAt;
    try {
      normal.close();
    } catch { /* closed when the welcome took too long */ }
    attacker.close();
    await draining;
    return `registrations=${count} absorbed_s=${absorbed.toFixed(3)} welcome_ms=${
      welcomed ? welcomeMs.toFixed(1) : "none"
    } sigterm_ms=${stopMs.toFixed(0)} exit=${status.code}`;
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }
}

for (const count of counts) console.log(await step(count));
