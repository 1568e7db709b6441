/**
 * The send path (`net/connection.ts`) without sockets: what one chat costs the
 * server on its way out to the 49 other members of a 50-member room, so a
 * change to the flush shows its cost per delivery. Issue 14 made it one
 * end-of-turn task for every connection that queued bytes (not one per
 * connection) and one write continuation per connection (not an async frame
 * per flush and another per write); the fixed-rate figure it moves is
 * `compare.sh`'s "server CPU at 2,000 msg/s".
 *
 * A fake connection completes every write at once. Each iteration sends 200
 * messages to 49 connections, one turn per message ("1 frame a turn", the
 * fixed-rate case) or 8 frames per turn (the windowed fan-out, where the
 * flush joins the frames into one write), and waits until every queue drained.
 *
 * Run: `deno bench bench/send_path_bench.ts`.
 *
 * @module
 */

import { encodeChannelFrame } from "../protocols/channel.ts";
import { Connection } from "../net/connection.ts";

const MEMBERS = 49;
const MESSAGES = 200;
const frame = encodeChannelFrame("[alice] T123456789 S12 Q345 K6789");
let written = 0;

/** A Deno.Conn stand-in whose writes complete at once. */
function fakeConnection(): Connection {
  const conn = {
    localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 2 },
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    read: () => new Promise<number | null>(() => {}),
    write: (p: Uint8Array) => {
      written += p.length;
      return Promise.resolve(p.length);
    },
    close() {},
  } as unknown as Deno.Conn;
  return new Connection(conn);
}

const members = Array.from({ length: MEMBERS }, fakeConnection);

for (const perTurn of [1, 8]) {
  Deno.bench(`fan-out to ${MEMBERS}, ${perTurn} frame(s) a turn`, async () => {
    written = 0;
    for (let m = 0; m < MESSAGES; m += perTurn) {
      for (let f = 0; f < perTurn; f++) for (const member of members) member.send(frame);
      await Promise.all(members.map((member) => member.drain()));
    }
    if (written !== MEMBERS * MESSAGES * frame.length) throw new Error(`wrote ${written} bytes`);
  });
}
