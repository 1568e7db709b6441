/**
 * Signal handling for entry points: SIGINT and SIGTERM stop the servers cleanly
 * and exit 0.
 *
 * @module
 */

import type { Logger } from "@logtape/logtape";
import type { Server } from "../net/serve.ts";

/** What {@link exitOnSignal} returns: add the servers to stop as they start. */
export interface SignalStop {
  /** Shuts this server down too when a signal arrives. */
  add(server: Server): void;
}

/**
 * For entry points: on SIGINT or SIGTERM, shut the registered servers down
 * and exit 0. Call it before starting anything, so a signal that arrives
 * while a server starts is still a clean exit.
 */
export function exitOnSignal(servers: Server[] = [], logger?: Logger): SignalStop {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let stopping = false;
  const handler = async () => {
    if (stopping) return;
    stopping = true;
    logger?.info("Shutting down");
    const timer = setTimeout(() => Deno.exit(0), 3000);
    await Promise.allSettled(servers.map((s) => s.shutdown()));
    clearTimeout(timer);
    Deno.exit(0);
  };
  for (const s of signals) Deno.addSignalListener(s, handler);
  return { add: (server) => void servers.push(server) };
}
