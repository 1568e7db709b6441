/**
 * IM load figure (issue: IM): messages delivered per second in one
 * conversation of 50 members. The server runs as its own process (the real
 * entry point); 50 clients in this process each send MESSAGES chats with at
 * most WINDOW of their own not yet seen by everyone.
 *
 *   deno run -A bench/im_load.ts [--members 50] [--messages 400] [--window 8]
 *
 * Loopback only; bounded in count and time (60 s), stops by itself.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { encodeIm, ImLineDecoder, parseImLine } from "../protocols/im.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    members: { type: "string", default: "50" },
    messages: { type: "string", default: "400" },
    window: { type: "string", default: "8" },
  },
});
const N = Number(values.members), M = Number(values.messages), W = Number(values.window);
const root = new URL("..", import.meta.url).pathname;
const server = new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-net", "servers/im.ts", "--port", "0", "--log-level", "info"],
  cwd: root,
  stdout: "piped",
  stderr: "inherit",
  env: { NO_COLOR: "1" },
}).spawn();
const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
let log = "";
while (!/Listening on [\d.]+:(\d+)/.test(log)) log += (await reader.read()).value ?? "";
const port = Number(/Listening on [\d.]+:(\d+)/.exec(log)![1]);
void (async () => {
  while (!(await reader.read()).done) { /* drain */ }
})();

const deadline = Date.now() + 60_000;
const watchdog = setTimeout(() => {
  console.error("TIMEOUT: the run did not finish in 60 s");
  server.kill("SIGKILL");
  Deno.exit(1);
}, 60_000);
interface Member {
  conn: Deno.TcpConn;
  name: string;
  received: number;
  /** Per sender: highest sequence number seen. */
  acked: number;
}
const members: Member[] = [];
const seenBy = new Map<string, number>(); // "sender:seq" -> receivers so far
const ownInFlight = new Array(N).fill(0);
let delivered = 0;
let conversation = 0;
const ready = Promise.withResolvers<void>();
const allOnline = Promise.withResolvers<void>();
const done = Promise.withResolvers<void>();
let joinedCount = 0;
const wake: (() => void)[] = [];

async function write(conn: Deno.TcpConn, bytes: Uint8Array) {
  for (let o = 0; o < bytes.length;) o += await conn.write(bytes.subarray(o));
}

for (let i = 0; i < N; i++) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const m: Member = { conn, name: `m${i}`, received: 0, acked: 0 };
  members.push(m);
  await write(conn, encodeIm({ command: "REGISTER", username: m.name, status: "online" }));
  (async () => {
    const decoder = new ImLineDecoder();
    const buf = new Uint8Array(256 * 1024);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      for (const line of decoder.decode(buf.subarray(0, n))) {
        const msg = parseImLine(line);
        if (msg.command === "ONLINE_USERS") {
          if (Object.keys(msg.users).length === N) allOnline.resolve();
        } else if (msg.command === "INVITATION") {
          conversation = Number(msg.conversation);
          await write(conn, encodeIm({ command: "JOIN", conversation }));
          await write(
            conn,
            encodeIm({ command: "SEND_MESSAGE", conversation, message: `ready ${i}` }),
          );
        } else if (msg.command === "MESSAGE") {
          if (msg.message.startsWith("ready ")) {
            if (msg.sender === m.name && ++joinedCount === N) ready.resolve();
            continue;
          }
          delivered++;
          const key = `${msg.sender}:${msg.message}`;
          const count = (seenBy.get(key) ?? 0) + 1;
          if (count === N) {
            seenBy.delete(key);
            ownInFlight[Number(msg.sender.slice(1))]--;
            for (const w of wake.splice(0)) w();
          } else seenBy.set(key, count);
          if (delivered === N * N * M) done.resolve();
        }
      }
    }
  })();
}
await allOnline.promise; // INVITE only once every member is registered
await write(
  members[0].conn,
  encodeIm({ command: "INVITE", users: members.slice(1).map((m) => m.name) }),
);
await ready.promise;

const started = performance.now();
await Promise.all(members.map(async (m, i) => {
  for (let k = 0; k < M; k++) {
    while (ownInFlight[i] >= W) await new Promise<void>((r) => wake.push(r));
    ownInFlight[i]++;
    await write(m.conn, encodeIm({ command: "SEND_MESSAGE", conversation, message: `s${k}` }));
  }
}));
const timer = setTimeout(() => done.resolve(), Math.max(0, deadline - Date.now()));
await done.promise;
clearTimeout(timer);
const seconds = (performance.now() - started) / 1000;
console.log(
  `RESULT members=${N} messages=${N * M} deliveries=${delivered}/${N * N * M} secs=${
    seconds.toFixed(3)
  } ` +
    `messages_per_s=${Math.round((N * M) / seconds)} deliveries_per_s=${
      Math.round(delivered / seconds)
    }`,
);
for (const m of members) m.conn.close();
clearTimeout(watchdog);
server.kill("SIGTERM");
await server.status;
