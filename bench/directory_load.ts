/**
 * Directory load figures (issue: eurechat): logins per second at the default
 * hash cost, QUERY round trips per second with 1,000 bound users, and the time
 * one liveness sweep takes over 1,000 bound peers of which 100 never answer.
 *
 *   deno run -A bench/directory_load.ts [--hash-cost 15] [--logins 40]
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
  },
});
const cost = Number(values["hash-cost"]);
const port = (s: { addr: Deno.Addr }) => (s.addr as Deno.NetAddr).port;

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
