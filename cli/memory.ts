/**
 * Gives memory back after a burst: a server process that has gone quiet runs
 * one memory-reducing garbage collection.
 *
 * Why: when thousands of clients connect at once, V8 grows its young
 * generation (up to 3 x 16 MiB semi-spaces) because so much of what it
 * allocates survives, and it shrinks that space again only during a
 * collection made while little is being allocated. An idle server allocates
 * nothing, so no collection comes: 5,000 idle channel clients left about
 * 27 MiB of young generation reserved for 4 MiB of live objects, some 5 KiB
 * per connection of resident memory (`bash bench/idle_memory.sh`). V8's own
 * memory reducer does this in a browser; nothing starts it in a Deno server.
 *
 * How: a timer looks at the heap twice a second (`setInterval`, unref'd, so it
 * never keeps the process alive). When the heap is larger than it was after
 * the last reduction by {@link GROWTH_BYTES}, and over the last
 * {@link QUIET_TICKS} ticks no connection read or wrote a byte
 * (`activityCount()` in `net/connection.ts`) and the used heap moved by less
 * than {@link QUIET_BYTES} (the process is idle), it runs one full
 * collection (a major mark-compact), which compacts the old generation and
 * shrinks the young one. That pauses the process: 80-100 ms with 5,000 idle
 * channel clients (25 MB of live heap) on the 2-core test machine, so it runs
 * at most once per {@link MIN_INTERVAL_MS} and never while a connection is
 * active. (A server
 * whose traffic is not on `net/` connections, UDP timestamps, is judged by
 * its heap alone.)
 *
 * It is process-wide, so the entry points start it (`cli/run_server.ts`);
 * a library user's process is left alone.
 *
 * @module
 */

import { getLogger } from "@logtape/logtape";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { activityCount } from "../net/connection.ts";

/** Heap growth since the last reduction that makes one worth running. */
export const GROWTH_BYTES = 8 * 1024 * 1024;

/** Change of the used heap per tick below which the process counts as idle. */
export const QUIET_BYTES = 256 * 1024;

/** Idle ticks (two a second) in a row before a reduction: about a second of quiet. */
export const QUIET_TICKS = 2;

/** How often the heap is looked at. */
export const TICK_MS = 500;

/** Shortest time between two reductions. */
export const MIN_INTERVAL_MS = 10_000;

type GcFunction = (options: { type: "major"; execution: "sync" }) => void;

/** Reserved and used bytes of the V8 heap, over all spaces. */
function heapBytes(): { reserved: number; used: number } {
  let reserved = 0;
  let used = 0;
  for (const space of getHeapSpaceStatistics()) {
    reserved += space.space_size;
    used += space.space_used_size;
  }
  return { reserved, used };
}

/** The running reducer (see the module documentation). */
export interface IdleMemoryReducer {
  /** Reductions run so far. */
  readonly reductions: number;
  /** Looks at the heap now (the timer calls it every {@link TICK_MS}). */
  tick(now?: number): void;
  /** Stops the timer. */
  stop(): void;
}

let gcFunction: GcFunction | undefined;

/**
 * V8's collector as a function. `--expose-gc` set at run time installs `gc`
 * in contexts made afterwards, so a fresh `node:vm` context hands it over; the
 * main context gets no global `gc`.
 */
function collector(): GcFunction | undefined {
  if (!gcFunction) {
    try {
      setFlagsFromString("--expose-gc");
      const gc = runInNewContext("gc");
      if (typeof gc === "function") gcFunction = gc as GcFunction;
    } catch { /* not offered here: the reducer stays idle */ }
  }
  return gcFunction;
}

/**
 * Starts the reducer (see the module documentation). `intervalMs` 0 starts
 * no timer (tests call {@link IdleMemoryReducer.tick}).
 *
 * @example
 * ```ts
 * import { startIdleMemoryReducer } from "./memory.ts";
 * const reducer = startIdleMemoryReducer({ intervalMs: 0 });
 * reducer.tick();
 * reducer.stop();
 * ```
 */
export function startIdleMemoryReducer(options: { intervalMs?: number } = {}): IdleMemoryReducer {
  const intervalMs = options.intervalMs ?? TICK_MS;
  const gc = collector();
  if (!gc) {
    getLogger(["parley", "memory"]).debug("No collector function here: memory is not given back");
    return { reductions: 0, tick: () => {}, stop: () => {} };
  }
  let baseline = heapBytes().reserved;
  let lastUsed = -Infinity;
  let lastActivity = -1;
  let quietTicks = 0;
  let lastReduction = -Infinity;
  let reductions = 0;
  const tick = (now = performance.now()) => {
    const { reserved, used } = heapBytes();
    const activity = activityCount();
    const quiet = Math.abs(used - lastUsed) < QUIET_BYTES && activity === lastActivity;
    quietTicks = quiet ? quietTicks + 1 : 0;
    lastUsed = used;
    lastActivity = activity;
    if (reserved < baseline) baseline = reserved;
    if (
      quietTicks < QUIET_TICKS || reserved - baseline < GROWTH_BYTES ||
      now - lastReduction < MIN_INTERVAL_MS
    ) return;
    gc({ type: "major", execution: "sync" });
    reductions++;
    lastReduction = now;
    baseline = heapBytes().reserved;
    quietTicks = 0;
  };
  const timer = intervalMs > 0 ? setInterval(tick, intervalMs) : undefined;
  if (timer !== undefined) Deno.unrefTimer(timer);
  return {
    get reductions() {
      return reductions;
    },
    tick,
    stop: () => clearInterval(timer),
  };
}
