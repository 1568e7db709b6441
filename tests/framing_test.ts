import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { Connection } from "../net/connection.ts";
import { FrameReader, receiveFrames } from "../net/framing.ts";
import { serveStream, type ServeStreamOptions } from "../net/serve.ts";
import { ImLineDecoder } from "../protocols/im.ts";
import { FrameError } from "../protocols/errors.ts";
import type { FrameDecoder } from "../protocols/frames.ts";
import { Peer, portOf, within } from "./_helpers.ts";

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

/** A line echo server on the one read path, "REGISTER" registers, "QUIT" ends. */
function lineServer(options: ServeStreamOptions) {
  return serveStream({ port: 0 }, async (connection) => {
    for await (const text of receiveFrames(connection, new ImLineDecoder({ maxLineBytes: 16 }))) {
      if (text === "QUIT") break;
      if (text === "REGISTER") connection.registered();
      connection.send(line(`echo ${text}`)); // content: reply and stay
    }
  }, options);
}

/** Reads lines from the server until it closes; returns them and how long that took. */
async function linesUntilClosed(peer: Peer<string>, ms = 3000): Promise<string> {
  await peer.closedByServer(ms);
  return peer.frames.join("");
}

Deno.test("receiveFrames(): a framing error gets the policy's reply, then the connection is ended", async () => {
  await using server = lineServer({ onFrameError: (e) => line(`ERROR ${e.name}`) });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.write(line("hello"));
  deepStrictEqual(await peer.next(), "echo hello\n");
  await peer.write(line("x".repeat(40))); // over the 16-byte line limit: boundaries are lost
  deepStrictEqual(await linesUntilClosed(peer), "ERROR FrameTooLargeError\n");
});

Deno.test("receiveFrames(): a partial frame when the peer closes is a framing error too", async () => {
  let reported: unknown;
  await using server = lineServer({
    onFrameError: (e) => {
      reported = e;
      return undefined;
    },
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
  await conn.write(encoder.encode("no newline"));
  await conn.closeWrite();
  const buffer = new Uint8Array(16);
  deepStrictEqual(await conn.read(buffer), null);
  conn.close();
  ok(reported instanceof FrameError, `reported ${reported}`);
});

Deno.test("receiveFrames(): breaking out of the loop ends the connection after what was queued", async () => {
  await using server = lineServer({});
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.write(line("a"));
  await peer.write(line("QUIT"));
  deepStrictEqual(await linesUntilClosed(peer), "echo a\n");
});

Deno.test("receiveFrames(): on a dialled connection (no policy) a framing error is thrown", async () => {
  await using server = serveStream({ port: 0 }, (connection) => {
    connection.send(encoder.encode("complete\npartial"));
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server.addr) });
  const got: string[] = [];
  await rejects(async () => {
    for await (const text of receiveFrames(new Connection(conn), new ImLineDecoder())) {
      got.push(text);
    }
  }, FrameError);
  conn.close();
  deepStrictEqual(got, ["complete"]);
});

Deno.test("frame timeout: one byte per interval never completing a frame is closed (slowloris)", async () => {
  await using server = lineServer({ frameTimeoutMs: 150 });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  const started = performance.now();
  // Each byte arrives well within the frame timeout of the previous one, the frame never ends.
  while (!peer.ended && performance.now() - started < 3000) {
    await peer.write(encoder.encode("x")).catch(() => {});
    await peer.waitFor(() => peer.ended, 40, "a closed connection").catch(() => {});
  }
  const elapsed = performance.now() - started;
  ok(peer.ended, "slowloris connection still open after 3 s");
  ok(elapsed >= 140, `closed after ${elapsed} ms, before the frame timeout`);
});

Deno.test("frame timeout: complete messages, however slow, are never cut; an idle connection stays", async () => {
  await using server = lineServer({ frameTimeoutMs: 100 });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  for (const text of ["one", "two", "three"]) {
    await peer.write(line(text));
    deepStrictEqual(await peer.next(), `echo ${text}\n`);
    // Idle at a frame boundary for longer than the frame timeout: not a slow frame.
    await within(new Promise((r) => setTimeout(r, 150)), 1000, "a pause");
  }
  await peer.write(line("still"));
  deepStrictEqual(await peer.next(), "echo still\n");
  ok(!peer.ended);
});

Deno.test("idle timeout: reset by complete messages only, never by single bytes", async () => {
  await using server = lineServer({
    idleTimeoutMs: 200,
    frameTimeoutMs: 0,
    onIdle: () => line("IDLE"),
  });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  const started = performance.now();
  while (!peer.ended && performance.now() - started < 3000) {
    await peer.write(encoder.encode("y")).catch(() => {}); // bytes, never a whole line
    await peer.waitFor(() => peer.ended, 40, "a closed connection").catch(() => {});
  }
  ok(peer.ended, "bytes alone kept the connection alive");
  ok(peer.frames.join("").endsWith("IDLE\n"), peer.frames.join(""));
});

Deno.test("register timeout: an unregistered connection gets the reply and is closed; a registered one stays", async () => {
  await using server = lineServer({
    registerTimeoutMs: 150,
    onRegisterTimeout: () => line("ERROR register first"),
  });
  await using lazy = await Peer.connect(server.addr, new TextChunks());
  await using good = await Peer.connect(server.addr, new TextChunks());
  await good.write(line("REGISTER"));
  deepStrictEqual(await good.next(), "echo REGISTER\n");
  deepStrictEqual(await linesUntilClosed(lazy), "ERROR register first\n");
  await good.write(line("after"));
  deepStrictEqual(await good.next(), "echo after\n");
  ok(!good.ended);
});

Deno.test("idle timeout: time the server spends handling a message is not the peer idling", async () => {
  await using server = serveStream({ port: 0 }, async (connection) => {
    for await (const text of receiveFrames(connection, new ImLineDecoder())) {
      if (text === "SLOW") await new Promise((r) => setTimeout(r, 400)); // a password hash, say
      connection.send(line(`done ${text}`));
    }
  }, { idleTimeoutMs: 200, onIdle: () => line("IDLE") });
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.write(line("SLOW"));
  deepStrictEqual(await peer.next(), "done SLOW\n");
  await peer.write(line("next"));
  deepStrictEqual(await peer.next(), "done next\n");
});

// FrameReader is the loop under receiveFrames (so the policy tests above cover it); these check what
// its own interface adds: one batch per read, and the idle clock while a batch is handled.

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

Deno.test("FrameReader: frames of one read come as one batch; QUIT ends after what was queued", async () => {
  await using server = readerServer({});
  await using peer = await Peer.connect(server.addr, new TextChunks());
  await peer.write(encoder.encode("a\nb\nQUIT\nnever\n"));
  await peer.closedByServer(3000);
  deepStrictEqual(peer.frames.join(""), "echo a\necho b\n");
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
