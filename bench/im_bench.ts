/**
 * The IM server's hot path without sockets (issue 14: encode each message
 * once, not once per member): one SEND_MESSAGE handled by the real
 * `ImService` for a conversation of 50 members whose links only append to a
 * queue, beside the same fan-out encoding per member, which is what the
 * encode-once path avoids. The line codec's parts are timed alone.
 *
 * Run: `deno bench bench/im_bench.ts` (or `deno task bench`). Every iteration
 * of a fan-out case delivers one message to 50 members: deliveries per second
 * is 50 times iter/s. The end-to-end figure with sockets is
 * `bash bench/im_compare.sh`; `tests/im_test.ts` checks that every member's
 * queue gets the same bytes object.
 *
 * @module
 */

import { encodeIm, ImLineDecoder, parseImLine } from "../protocols/im.ts";
import { type ImLink, ImService, type ImUser } from "../servers/im.ts";

const MEMBERS = 50;
const TEXT = "T1796145517439123 S12 Q1234 K3456789012";

/** A service with one conversation (id 1) of MEMBERS users whose links append to `queue`. */
function conversationOf(members: number) {
  const queue: Uint8Array[] = [];
  const link: ImLink = {
    send: (bytes) => {
      if (queue.length > 100_000) queue.length = 0;
      queue.push(bytes);
      return true;
    },
    end: () => Promise.resolve(),
    drain: () => Promise.resolve(),
  };
  const service = new ImService({ presenceIntervalMs: 0 });
  const names = Array.from({ length: members }, (_, i) => `u${String(i).padStart(5, "0")}`);
  const users = names.map((n) => service.rooms.register(link, n, "online") as ImUser);
  service.act(users[0], { command: "INVITE", users: names.slice(1) });
  for (const user of users.slice(1)) service.act(user, { command: "JOIN", conversation: 1 });
  if (service.rooms.conversations.get(1)?.members.size !== members) throw new Error("not joined");
  return { service, users, link, queue };
}

const room = conversationOf(MEMBERS);
let seq = 0;

Deno.bench({
  name: `SEND_MESSAGE to ${MEMBERS} members: ImService, encoded once`,
  group: "im fan-out",
  baseline: true,
  fn() {
    const sender = room.users[seq++ % MEMBERS];
    room.service.act(sender, { command: "SEND_MESSAGE", conversation: 1, message: TEXT });
  },
});

Deno.bench({
  name: `SEND_MESSAGE to ${MEMBERS} members: encodeIm per member (what encode-once avoids)`,
  group: "im fan-out",
  fn() {
    const sender = room.users[seq++ % MEMBERS];
    const conversation = room.service.rooms.conversations.get(1)!;
    for (const member of conversation.members) {
      member.connection.send(
        encodeIm({ command: "MESSAGE", conversation: 1, sender: sender.name, message: TEXT }),
      );
    }
  },
});

const line = `SEND_MESSAGE [1,${JSON.stringify(TEXT)}]`;
Deno.bench({
  name: "parseImLine SEND_MESSAGE",
  group: "im line",
  baseline: true,
  fn() {
    parseImLine(line);
  },
});

Deno.bench({
  name: "encodeIm MESSAGE",
  group: "im line",
  fn() {
    encodeIm({ command: "MESSAGE", conversation: 1, sender: "u00012", message: TEXT });
  },
});

const chunk = new TextEncoder().encode(`${line}\n`.repeat(64));
Deno.bench({
  name: "ImLineDecoder, 64 SEND_MESSAGE lines in one read (per line: divide by 64)",
  group: "im line",
  fn() {
    if (new ImLineDecoder().decode(chunk).length !== 64) throw new Error("lost lines");
  },
});
