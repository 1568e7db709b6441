/**
 * Load through the web bridge: `--users` WebSocket users (default 20) in one
 * conversation, each sending `--messages` messages (default 200) with a
 * window of 8 unanswered; prints messages and deliveries per second as seen
 * by the browsers' side of the bridge.
 *
 * ```sh
 * deno run -A bench/web_load.ts --users 20 --messages 200
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { serveIm } from "../servers/im.ts";
import { serveWeb } from "../servers/web.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    users: { type: "string", default: "20" },
    messages: { type: "string", default: "200" },
  },
});
const users = Number(values.users);
const perUser = Number(values.messages);
const WINDOW = 8;

await using im = serveIm({ port: 0, presenceIntervalMs: 0 });
await using web = serveWeb({
  port: 0,
  im: { hostname: "127.0.0.1", port: (im.addr as Deno.NetAddr).port },
});
const url = `ws://127.0.0.1:${(web.addr as Deno.NetAddr).port}/ws`;

interface User {
  name: string;
  socket: WebSocket;
  received: number;
  ownEchoes: number;
  wake?: () => void;
}

const open = (name: string) =>
  new Promise<User>((resolve, reject) => {
    const socket = new WebSocket(url);
    const user: User = { name, socket, received: 0, ownEchoes: 0 };
    socket.onopen = () => socket.send(`REGISTER ${JSON.stringify([name, "online"])}`);
    socket.onerror = () => reject(new Error(`${name}: WebSocket failed`));
    socket.onmessage = (event) => {
      const text = String(event.data);
      if (text.startsWith("ONLINE_USERS") && user.received === 0 && !user.wake) resolve(user);
      if (!text.startsWith("MESSAGE ")) return;
      user.received++;
      if (text.startsWith(`MESSAGE [1,${JSON.stringify(name)},`)) user.ownEchoes++;
      user.wake?.();
    };
  });

const everyone: User[] = [];
for (let i = 0; i < users; i++) everyone.push(await open(`u${i}`));
const [first, ...rest] = everyone;
first.socket.send(`INVITE ${JSON.stringify(rest.map((u) => u.name))}`);
for (const u of everyone) u.socket.send("JOIN [1]");
while ((im.conversations()["1"]?.length ?? 0) < users) await new Promise((r) => setTimeout(r, 5));

const total = users * perUser;
const start = performance.now();
await Promise.all(everyone.map(async (u) => {
  for (let sent = 0; sent < perUser; sent++) {
    while (sent - u.ownEchoes >= WINDOW) await new Promise<void>((r) => u.wake = r);
    u.socket.send(`SEND_MESSAGE [1,"message ${sent} from ${u.name}"]`);
  }
}));
await Promise.all(everyone.map(async (u) => {
  while (u.received < total) await new Promise<void>((r) => u.wake = r);
}));
const seconds = (performance.now() - start) / 1000;
console.log(
  `${users} users x ${perUser} messages: ${Math.round(total / seconds)} messages/s, ` +
    `${Math.round((total * users) / seconds)} deliveries/s through the bridge (${
      seconds.toFixed(2)
    } s)`,
);
for (const u of everyone) u.socket.close();
await Promise.all(
  everyone.map((u) =>
    u.socket.readyState === WebSocket.CLOSED
      ? undefined
      : new Promise((r) => u.socket.addEventListener("close", r))
  ),
);
