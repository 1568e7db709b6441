/**
 * Opens TCP connections to a server and resets each one (RST, not FIN) as
 * soon as it is established: most are still in the listener's backlog, so
 * the server's `accept()` fails for them (SPEC 6.1). An attack tool for the
 * hostile tests and `bench/hostile_load.ts`, bounded in count and rate, and
 * loopback only.
 *
 * ```sh
 * deno run --allow-net tools/reset_flood.ts PORT [COUNT=300] [PER_SECOND=100] [HOST=127.0.0.1]
 * ```
 *
 * Prints one JSON line: `{"reset":N,"failed":N,"ms":N}`.
 *
 * @module
 */

import net from "node:net";

/** Options of {@link resetFlood}. */
export interface ResetFloodOptions {
  /** Loopback address of the server (default `127.0.0.1`). */
  hostname?: string;
  /** Connections to open and reset (default 300, at most 100 000). */
  count?: number;
  /** Connections per second (default 100). */
  perSecond?: number;
}

/** Runs the flood; resolves with how many connections were reset and how many failed. */
export async function resetFlood(
  port: number,
  options: ResetFloodOptions = {},
): Promise<{ reset: number; failed: number; ms: number }> {
  const hostname = options.hostname ?? "127.0.0.1";
  if (!/^(127\.|::1$|localhost$)/.test(hostname)) throw new Error("loopback only");
  const count = Math.min(options.count ?? 300, 100_000);
  const perSecond = options.perSecond ?? 100;
  let reset = 0, failed = 0;
  const started = performance.now();
  const one = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect({ host: hostname, port });
      socket.on("connect", () => {
        socket.resetAndDestroy();
        reset++;
        resolve();
      });
      socket.on("error", () => {
        failed++;
        resolve();
      });
    });
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(one());
  }
  await Promise.all(pending);
  return { reset, failed, ms: Math.round(performance.now() - started) };
}

if (import.meta.main) {
  const [port, count, perSecond, hostname] = Deno.args;
  const result = await resetFlood(Number(port), {
    count: count ? Number(count) : undefined,
    perSecond: perSecond ? Number(perSecond) : undefined,
    hostname,
  });
  console.log(JSON.stringify(result));
}
