import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { HashQueue, HashQueueFullError, RateLimiter } from "../servers/_accounts.ts";

/** A task the test finishes by hand. */
function gate() {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { promise, open: resolve };
}

Deno.test("HashQueue runs at most `concurrency` tasks, then first in first out, and refuses past the queue", async () => {
  const queue = new HashQueue({ concurrency: 2, maxWaiting: 2 });
  const gates = Array.from({ length: 4 }, gate);
  const order: number[] = [];
  const runs = gates.map((g, i) =>
    queue.run(async () => {
      order.push(i);
      await g.promise;
      return i;
    })
  );
  await Promise.resolve();
  deepStrictEqual(order, [0, 1]);
  deepStrictEqual(queue.waiting, 2);
  await rejects(queue.run(() => Promise.resolve(9)), HashQueueFullError);
  gates[1].open();
  await runs[1];
  // The freed slot goes to the first waiter even if a newcomer asks at the same moment.
  const late = queue.run(() => {
    order.push(4);
    return Promise.resolve(4);
  });
  await new Promise((r) => setTimeout(r, 0));
  deepStrictEqual(order, [0, 1, 2]);
  for (const g of gates) g.open();
  deepStrictEqual(await Promise.all([...runs, late]), [0, 1, 2, 3, 4]);
  deepStrictEqual(order, [0, 1, 2, 3, 4]);
  deepStrictEqual(queue.started, 5);
});

Deno.test("HashQueue: a task whose signal aborts while it waits leaves the queue and never runs", async () => {
  const queue = new HashQueue({ concurrency: 1, maxWaiting: 64 });
  const g = gate();
  const first = queue.run(() => g.promise);
  const hangUp = new AbortController();
  let ran = false;
  const abandoned = queue.run(() => {
    ran = true;
    return Promise.resolve();
  }, hangUp.signal);
  const kept = queue.run(() => Promise.resolve("kept"));
  deepStrictEqual(queue.waiting, 2);
  hangUp.abort();
  await rejects(abandoned);
  deepStrictEqual(queue.waiting, 1);
  g.open();
  await first;
  deepStrictEqual(await kept, "kept");
  ok(!ran);
  deepStrictEqual(queue.started, 2);
});

Deno.test("RateLimiter allows `max` per key per window and forgets old keys", () => {
  let now = 0;
  const limiter = new RateLimiter({ max: 3, windowMs: 60_000, now: () => now });
  for (let i = 0; i < 3; i++) deepStrictEqual(limiter.take("a"), 0);
  deepStrictEqual(limiter.take("a"), 60);
  deepStrictEqual(limiter.take("b"), 0);
  now = 30_000;
  deepStrictEqual(limiter.take("a"), 30);
  now = 60_001;
  deepStrictEqual(limiter.take("a"), 0);
  for (let i = 0; i < 10_000; i++) {
    limiter.take(`k${i}`);
    now += 10; // 6,000 keys per window
  }
  ok(limiter.size < 4096 * 2 + 6001, `tracking ${limiter.size} keys`);
});
