import { deepStrictEqual, ok } from "node:assert/strict";
import { connectWithTimeout } from "../net/dial.ts";
import { Connection } from "../net/connection.ts";
import { serveStream } from "../net/serve.ts";
import { receiveFrames } from "../net/framing.ts";
import { TimestampChunkDecoder } from "../protocols/timestamp.ts";
import { serveTimestamp } from "../servers/timestamp.ts";
import { Peer, portOf, within } from "./_helpers.ts";
import type { FrameDecoder } from "../protocols/frames.ts";

/** Collects raw chunks as text. */
class TextChunks implements FrameDecoder<string> {
  #d = new TextDecoder();
  decode(chunk: Uint8Array): string[] {
    return [this.#d.decode(chunk, { stream: true })];
  }
  end() {}
}

const encoder = new TextEncoder();

Deno.test("serveStream() disconnects a peer that never reads once its queue passes the limit; others are served", async () => {
  await using server = await serveTimestamp({ port: 0, maxQueueBytes: 256 * 1024 });
  const slow = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
  await using fast = await Peer.connect(server.addr, new TextChunks());
  const block = new Uint8Array(64 * 1024).fill(0x61);
  let written = 0;
  let failure: unknown;
  // The slow peer floods and never reads: the server must drop it long before 256 MiB.
  try {
    while (written < 256 * 1024 * 1024) {
      written += await slow.write(block);
      if (written % (1024 * 1024) === 0) {
        await fast.write(encoder.encode("ping\n"));
        let got = "";
        while (!got.endsWith("ping\n")) got += await fast.next();
        ok(got.endsWith("] ping\n"));
      }
    }
  } catch (error) {
    failure = error;
  }
  slow.close();
  ok(
    failure instanceof Deno.errors.ConnectionReset || failure instanceof Deno.errors.BrokenPipe,
    `slow peer was not dropped after ${written} bytes: ${failure}`,
  );
  await fast.write(encoder.encode("still here\n"));
  let got = "";
  while (!got.endsWith("still here\n")) got += await fast.next();
  ok(got.includes("] still here"));
});

Deno.test("Server.shutdown() closes every connection and resolves finished", async () => {
  const server = serveStream({ port: 0 }, async (connection) => {
    for await (const chunk of receiveFrames(connection, new TimestampChunkDecoder())) {
      connection.send(chunk);
    }
  }, {
    farewell: (connection) => connection.send(encoder.encode("bye\n")),
  });
  const peers = await Promise.all([1, 2, 3].map(() => Peer.connect(server.addr, new TextChunks())));
  await peers[0].write(encoder.encode("x"));
  deepStrictEqual(await peers[0].next(), "x");
  await server.shutdown();
  await within(server.finished, 1000, "finished");
  for (const peer of peers) {
    await peer.closedByServer();
    deepStrictEqual(peer.frames.join(""), "bye\n");
    await peer.close();
  }
  const refused = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) }).catch((
    e,
  ) => e);
  ok(refused instanceof Deno.errors.ConnectionRefused);
});

Deno.test("serveStream() isolates a handler that throws", async () => {
  let calls = 0;
  await using server = serveStream({ port: 0 }, async (connection) => {
    calls++;
    if (calls === 1) throw new Error("boom");
    for await (const chunk of receiveFrames(connection, new TimestampChunkDecoder())) {
      connection.send(chunk);
    }
  });
  await using first = await Peer.connect(server.addr, new TextChunks());
  await first.closedByServer();
  await using second = await Peer.connect(server.addr, new TextChunks());
  await second.write(encoder.encode("ok"));
  deepStrictEqual(await second.next(), "ok");
});

Deno.test("Connection.send() coalesces frames queued in one turn into few writes", async () => {
  let writes = 0;
  await using server = serveStream({ port: 0 }, async (connection) => {
    const original = connection.conn.write.bind(connection.conn);
    connection.conn.write = (p: Uint8Array) => {
      writes++;
      return original(p);
    };
    for (let i = 0; i < 100; i++) connection.send(encoder.encode(`${i};`));
    await connection.drain();
  });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.closedByServer();
  const text = peer.frames.join("");
  deepStrictEqual(text, Array.from({ length: 100 }, (_, i) => `${i};`).join(""));
  deepStrictEqual(writes, 1);
});

Deno.test("connectWithTimeout() connects, and fails on a closed port", async () => {
  await using server = serveStream({ port: 0 }, () => {});
  const conn = await connectWithTimeout("127.0.0.1", portOf(server.addr), 1000);
  conn.close();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = portOf(listener.addr);
  listener.close();
  const error = await connectWithTimeout("127.0.0.1", closedPort, 1000).catch((e) => e);
  ok(error instanceof Deno.errors.ConnectionRefused);
});

Deno.test("deno.json sanitizers make a leaked resource fail the test run", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-net", "tests/fixtures/leaky_fixture.ts"],
    cwd: root,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  ok(code !== 0, "the leaky test passed");
  ok(/leak/i.test(text), text);
});

/** A Deno.Conn stand-in whose writes take at most `most` bytes each (a full kernel buffer). */
function partialWriter(most: number, fail?: () => boolean) {
  const written: number[] = [];
  let calls = 0;
  const conn = {
    localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 2 },
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    read: () => new Promise<number | null>(() => {}),
    write: (p: Uint8Array) => {
      calls++;
      if (fail?.()) return Promise.reject(new Deno.errors.BrokenPipe("gone"));
      const n = Math.min(most, p.length);
      written.push(...p.subarray(0, n));
      return Promise.resolve(n);
    },
    close() {},
  } as unknown as Deno.Conn;
  return { conn, written, calls: () => calls };
}

Deno.test("Connection writes the rest of a partial write, in order, and counts progress", async () => {
  const { conn, written, calls } = partialWriter(3);
  const progress: number[] = [];
  const connection = new Connection(conn, { onWritten: (c) => progress.push(c.queuedBytes) });
  connection.send(Uint8Array.of(1, 2, 3, 4, 5, 6, 7));
  connection.send(Uint8Array.of(8, 9));
  await connection.drain();
  deepStrictEqual(written, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  deepStrictEqual(calls(), 3); // the two chunks joined, 9 bytes in writes of 3
  deepStrictEqual(progress, [6, 3, 0]);
  // One chunk alone is written as it is; a later send after the drain starts a new write.
  connection.send(Uint8Array.of(10));
  await connection.drain();
  deepStrictEqual(written.at(-1), 10);
  deepStrictEqual(connection.queuedBytes, 0);
  connection.close();
});

Deno.test("Connection closes on a failed write and wakes drain(); later sends are refused", async () => {
  let failing = false;
  const { conn, written } = partialWriter(100, () => failing);
  const connection = new Connection(conn);
  connection.send(Uint8Array.of(1));
  await connection.drain();
  failing = true;
  connection.send(Uint8Array.of(2));
  await within(connection.drain(), 1000, "drain after a failed write");
  ok(connection.closed);
  deepStrictEqual(written, [1]);
  deepStrictEqual(connection.send(Uint8Array.of(3)), false);
});

Deno.test("serveStream() ends the connection of a handler that returns something other than a promise", async () => {
  // A loosely typed (JavaScript) handler: its return value is not waited for, and nothing crashes.
  const handler =
    ((connection: Connection) => connection.send(encoder.encode("hi\n"))) as unknown as (
      connection: Connection,
    ) => void;
  await using server = serveStream({ port: 0 }, handler);
  for (let i = 0; i < 2; i++) {
    await using peer = await Peer.connect(server.addr, new TextChunks());
    await peer.closedByServer();
    deepStrictEqual(peer.frames.join(""), "hi\n");
  }
});

Deno.test("Connection: a stream whose write throws is closed; the other connections of the turn are still written", async () => {
  const thrower = partialWriter(100);
  (thrower.conn as unknown as { write: () => never }).write = () => {
    throw new Error("sync write failure");
  };
  const good = partialWriter(100);
  const first = new Connection(thrower.conn);
  const second = new Connection(good.conn);
  first.send(Uint8Array.of(1));
  second.send(Uint8Array.of(2));
  await within(Promise.all([first.drain(), second.drain()]), 1000, "both drained");
  ok(first.closed);
  deepStrictEqual(good.written, [2]);
  second.close();
});
