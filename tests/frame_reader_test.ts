/**
 * FrameReader (net/framing.ts): the generator-free read path the channel server
 * uses keeps the same policy and time limits as receiveFrames (SPEC
 * conventions, 6.2): framing errors get the reply and end the connection, a
 * partial frame at close is a framing error, slowloris is closed, and the idle
 * clock stops while the server handles a message.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { FrameReader } from "../net/framing.ts";
import { serveStream, type ServeStreamOptions } from "../net/serve.ts";
import { ImLineDecoder } from "../protocols/im.ts";
import { FrameError } from "../protocols/errors.ts";
import type { FrameDecoder } from "../protocols/frames.ts";
import { Peer, portOf } from "./_helpers.ts";

const encoder = new TextEncoder();
const line = (text: string) => encoder.encode(`${text}\n`);

/** Collects raw chunks as text. */
class TextChunks implements FrameDecoder<string> {
  #d = new TextDecoder();
  decode(chunk: Uint8Array): string[] {
    return [this.#d.decode(chunk, { stream: true })];
  }
  end() {}
}

/** A line echo server reading with FrameReader; "SLOW" takes 400 ms, "QUIT" ends. */
function readerServer(options: ServeStreamOptions) {
  return serveStream({ port: 0 }, async (connection) => {
    const reader = new FrameReader(connection, new ImLineDecoder({ maxLineBytes: 16 }));
    for (let texts; (texts = await reader.next());) {
      for (const text of texts) {
        if (connection.ending) return;
        if (text === "QUIT") return;
        if (text === "SLOW") await new Promise((r) => setTimeout(r, 400));
        connection.send(line(`echo ${text}`));
      }
    }
  }, options);
}

Deno.test("FrameReader: a framing error gets the policy's reply, then the connection is ended", async () => {
  await using server = readerServer({ onFrameError: (e) => line(`ERROR ${e.name}`) });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.write(line("hello"));
  deepStrictEqual(await peer.next(), "echo hello\n");
  await peer.write(line("x".repeat(40))); // over the 16-byte line limit
  await peer.closedByServer(3000);
  deepStrictEqual(peer.frames.join(""), "ERROR FrameTooLargeError\n");
});

Deno.test("FrameReader: frames of one read come as one batch; QUIT ends after what was queued", async () => {
  await using server = readerServer({});
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.write(encoder.encode("a\nb\nQUIT\nnever\n"));
  await peer.closedByServer(3000);
  deepStrictEqual(peer.frames.join(""), "echo a\necho b\n");
});

Deno.test("FrameReader: a partial frame when the peer closes is a framing error", async () => {
  let reported: unknown;
  await using server = readerServer({
    onFrameError: (e) => {
      reported = e;
      return undefined;
    },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
  await conn.write(encoder.encode("no newline"));
  await conn.closeWrite();
  deepStrictEqual(await conn.read(new Uint8Array(16)), null);
  conn.close();
  ok(reported instanceof FrameError, `reported ${reported}`);
});

Deno.test("FrameReader: one byte per interval never completing a frame is closed (slowloris)", async () => {
  await using server = readerServer({ frameTimeoutMs: 150 });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  const started = performance.now();
  while (!peer.ended && performance.now() - started < 3000) {
    await peer.write(encoder.encode("x")).catch(() => {});
    await peer.waitFor(() => peer.ended, 40, "a closed connection").catch(() => {});
  }
  ok(peer.ended, "slowloris connection still open after 3 s");
  ok(performance.now() - started >= 140, "closed before the frame timeout");
});

Deno.test("FrameReader: idle limit holds, and time the server spends handling is not idling", async () => {
  await using server = readerServer({ idleTimeoutMs: 200, onIdle: () => line("IDLE") });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.write(line("SLOW"));
  deepStrictEqual(await peer.next(), "echo SLOW\n");
  await peer.write(line("next"));
  deepStrictEqual(await peer.next(), "echo next\n");
  await peer.closedByServer(3000); // then silent: the idle limit ends it
  ok(peer.frames.join("").endsWith("IDLE\n"), peer.frames.join(""));
});
