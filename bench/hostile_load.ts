/**
 * Hostile load figures (issue 11, SPEC 6.1, 6.2): a normal client's latency
 * (p50/p99 of connect + one request + its reply, on a fresh connection each
 * time) while strangers attack the real server process over loopback:
 *
 * 1. baseline, nobody else;
 * 2. a stream of connections that reset before `accept()`, PER_SECOND a second;
 * 3. SLOW slowloris connections (one byte a second, never a whole frame) with
 *    `--exempt ''`; the normal client comes from another loopback address
 *    (127.0.0.2), so the per-address cap that refuses most of the slowloris
 *    does not count it.
 *
 *   deno run -A bench/hostile_load.ts [--server channel|timestamp] [--per-second 100]
 *     [--seconds 5] [--slow 200] [--frame-timeout 10] [--root CHECKOUT]
 *
 * Loopback only; bounded in count and time (every phase stops by itself,
 * the whole run takes about 2 x seconds + frame-timeout + 5 s).
 *
 * @module
 */

import net from "node:net";
import { parseArgs } from "node:util";
import { encodeChannelFrame } from "../protocols/channel.ts";
import { resetFlood } from "../tools/reset_flood.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    server: { type: "string", default: "channel" },
    "per-second": { type: "string", default: "100" },
    seconds: { type: "string", default: "5" },
    slow: { type: "string", default: "200" },
    "frame-timeout": { type: "string", default: "10" },
    root: { type: "string" },
  },
});
const kind = values.server === "timestamp" ? "timestamp" : "channel";
const perSecond = Math.min(Number(values["per-second"]), 1000);
const seconds = Math.min(Number(values.seconds), 60);
const slowCount = Math.min(Number(values.slow), 2000);
const frameTimeout = Math.min(Number(values["frame-timeout"]), 60);
/** The checkout whose servers run (`--root` measures another one, say the code before a fix). */
const root = values.root ?? new URL("..", import.meta.url).pathname;

/** Starts the server process; resolves with it and its port. */
async function startServer(flags: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", `servers/${kind}.ts`, "--port", "0", ...flags],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  while (!/Listening on [\d.]+:(\d+)/.test(log)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited: ${log}`);
    log += value;
  }
  void (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  void child.stderr.pipeTo(new WritableStream());
  return { child, port: Number(/Listening on [\d.]+:(\d+)/.exec(log)![1]) };
}

/** What the normal client sends and when its reply is complete. */
const probe = kind === "channel"
  ? {
    request: new Uint8Array([...encodeChannelFrame("bench"), ...encodeChannelFrame("/list")]),
    done: (bytes: number) => bytes >= 200,
  }
  : { request: new TextEncoder().encode("ping"), done: (bytes: number) => bytes >= 30 };

/** One normal request on a fresh connection from `localAddress`; resolves with its ms (or Infinity). */
function request(port: number, localAddress: string): Promise<number> {
  return new Promise((resolve) => {
    const started = performance.now();
    let got = 0;
    const socket = net.connect({ host: "127.0.0.1", port, localAddress });
    const timer = setTimeout(() => finish(Infinity), 5000);
    const finish = (ms: number) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ms);
    };
    socket.setNoDelay(true);
    socket.on("connect", () => socket.write(probe.request));
    socket.on("data", (data: Uint8Array) => {
      got += data.length;
      if (probe.done(got)) finish(performance.now() - started);
    });
    socket.on("error", () => finish(Infinity));
    socket.on("close", () => finish(Infinity));
  });
}

/** Requests every 10 ms until `until` resolves; returns the latencies. */
async function measure(port: number, until: Promise<unknown>, localAddress = "127.0.0.1") {
  let over = false;
  void until.finally(() => over = true);
  const times: number[] = [];
  while (!over) {
    times.push(await request(port, localAddress));
    await new Promise((r) => setTimeout(r, 10));
  }
  return times;
}

function summary(name: string, times: number[]): string {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const failed = times.filter((t) => t === Infinity).length;
  return `${name.padEnd(44)} n=${String(times.length).padStart(4)}  p50 ${
    at(0.5).toFixed(2)
  } ms  ` +
    `p99 ${at(0.99).toFixed(2)} ms  max ${sorted.at(-1)!.toFixed(2)} ms  failed ${failed}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// 1 and 2: baseline and the reset-before-accept stream.
{
  const { child, port } = await startServer([]);
  console.log(summary("baseline", await measure(port, sleep(seconds * 1000))));
  const flood = resetFlood(port, { count: perSecond * seconds, perSecond });
  const times = await measure(port, flood);
  const result = await flood;
  console.log(summary(`during ${perSecond}/s resets before accept`, times));
  console.log(`  (${result.reset} connections reset in ${result.ms} ms)`);
  console.log(summary("right after the flood", await measure(port, sleep(1000))));
  child.kill("SIGTERM");
  await child.status;
}

// 3: slowloris with --exempt '' (a checkout without these flags cannot run it).
const limited = await startServer(["--exempt", "", "--frame-timeout", String(frameTimeout)])
  .catch((error) => {
    console.log(`slowloris phase skipped: ${String(error).split("\n")[0]}`);
    return undefined;
  });
if (limited) {
  const { child, port } = limited;
  const slow: net.Socket[] = [];
  let refusedOrClosed = 0;
  const opened = performance.now();
  for (let i = 0; i < slowCount; i++) {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.on("error", () => {});
    socket.on("data", () => {}); // read, so the server's close is seen
    socket.on("close", () => refusedOrClosed++);
    slow.push(socket);
  }
  const drip = setInterval(() => {
    for (const socket of slow) if (!socket.destroyed) socket.write("x");
  }, 1000);
  await sleep(500);
  const early = refusedOrClosed;
  const times = await measure(port, sleep((frameTimeout + 2) * 1000), "127.0.0.2");
  clearInterval(drip);
  console.log(summary(`during ${slowCount} slowloris, --exempt ''`, times));
  console.log(
    `  (${early} refused at once by --max-per-ip; ${
      refusedOrClosed - early
    } more closed by --frame-timeout within ${
      ((performance.now() - opened) / 1000).toFixed(1)
    } s; ${slowCount - refusedOrClosed} still open)`,
  );
  for (const socket of slow) socket.destroy();
  child.kill("SIGTERM");
  await child.status;
}
