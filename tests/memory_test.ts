import assert, { equal as assertEquals } from "node:assert/strict";
import { getHeapSpaceStatistics } from "node:v8";
import { GROWTH_BYTES, MIN_INTERVAL_MS, startIdleMemoryReducer } from "../cli/memory.ts";
import { noteActivity } from "../net/connection.ts";

const reservedHeap = () => getHeapSpaceStatistics().reduce((sum, s) => sum + s.space_size, 0);

/** Grows the heap by keeping `megabytes` of small objects alive, then lets them go. */
function burst(megabytes: number): void {
  let kept: { n: number; text: string }[] | undefined = [];
  for (let i = 0; i < megabytes * 12_000; i++) kept.push({ n: i, text: `object ${i}` });
  assert(kept.length > 0);
  kept = undefined;
}

Deno.test("startIdleMemoryReducer() gives the heap back once the process is quiet after a burst", () => {
  const reducer = startIdleMemoryReducer({ intervalMs: 0 });
  try {
    let now = 0;
    reducer.tick(now += 1000);
    const before = reservedHeap();
    burst(40);
    const grown = reservedHeap();
    assert(grown - before >= GROWTH_BYTES, `the burst grew the heap by ${grown - before} bytes`);
    reducer.tick(now += 1000); // the used heap just moved: not quiet yet
    assertEquals(reducer.reductions, 0);
    reducer.tick(now += 1000);
    reducer.tick(now += 1000);
    assertEquals(reducer.reductions, 1);
    assert(reservedHeap() < grown - GROWTH_BYTES, `reserved ${grown} -> ${reservedHeap()} bytes`);
    // Quiet and nothing grew: no second collection, however long it stays quiet.
    for (let i = 0; i < 20; i++) reducer.tick(now += 1000);
    assertEquals(reducer.reductions, 1);
  } finally {
    reducer.stop();
  }
});

Deno.test("startIdleMemoryReducer() runs at most once per MIN_INTERVAL_MS", () => {
  const reducer = startIdleMemoryReducer({ intervalMs: 0 });
  try {
    let now = 0;
    reducer.tick(now);
    burst(40);
    for (let i = 0; i < 3; i++) reducer.tick(now += 1000);
    assertEquals(reducer.reductions, 1);
    const first = now;
    burst(40);
    while (now + 1000 - first < MIN_INTERVAL_MS) {
      reducer.tick(now += 1000);
      assertEquals(reducer.reductions, 1, `${now - first} ms after the first`);
    }
    reducer.tick(now += 1000);
    reducer.tick(now += 1000);
    assertEquals(reducer.reductions, 2);
  } finally {
    reducer.stop();
  }
});

Deno.test("startIdleMemoryReducer() waits while connections read or write, however little they allocate", () => {
  const reducer = startIdleMemoryReducer({ intervalMs: 0 });
  try {
    let now = 0;
    reducer.tick(now);
    burst(40);
    for (let i = 0; i < 10; i++) {
      noteActivity(); // one read between every two looks: the process is not idle
      reducer.tick(now += 1000);
    }
    assertEquals(reducer.reductions, 0);
    reducer.tick(now += 1000);
    reducer.tick(now += 1000);
    assertEquals(reducer.reductions, 1);
  } finally {
    reducer.stop();
  }
});
