/**
 * The one read path (`net/framing.ts`) without sockets: how fast `receiveFrames`
 * and `receiveFrameBatches` turn reads into channel frames, so a change to the
 * read loop (issue 14 made `receiveFrames` one generator instead of one wrapping
 * another, and added the generator-free `FrameReader` the channel server reads
 * with) shows its cost per frame. A fake connection answers every read at
 * once from memory, in reads of 8 frames (a fanout client with window 8) or of
 * one byte short of a frame (every read leaves a partial frame).
 *
 * Run: `deno bench bench/read_path_bench.ts`. Each iteration reads 2,000 frames.
 * Its memory side is `bash bench/idle_memory.sh` (KiB per idle connection).
 *
 * @module
 */

import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { Connection } from "../net/connection.ts";
import { FrameReader, receiveFrameBatches, receiveFrames } from "../net/framing.ts";

const FRAMES = 2000;
const frame = encodeChannelFrame("[alice] T123456789 S12 Q345 K6789");
const input = new Uint8Array(frame.length * FRAMES);
for (let i = 0; i < FRAMES; i++) input.set(frame, i * frame.length);

/** A Deno.Conn stand-in that serves `input` in reads of at most `readBytes`. */
function fakeConnection(readBytes: number): Connection {
  let offset = 0;
  const conn = {
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    read(buffer: Uint8Array): Promise<number | null> {
      if (offset >= input.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, readBytes, input.length - offset);
      buffer.set(input.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
    write: (p: Uint8Array) => Promise.resolve(p.length),
    close() {},
  } as unknown as Deno.Conn;
  return new Connection(conn);
}

for (
  const [name, readBytes] of [["8 frames a read", 8 * frame.length], [
    "199 bytes a read",
    frame.length - 1,
  ]] as const
) {
  Deno.bench(`receiveFrames, ${name}`, { group: name, baseline: true }, async () => {
    let count = 0;
    for await (const _ of receiveFrames(fakeConnection(readBytes), new ChannelDecoder())) count++;
    if (count !== FRAMES) throw new Error(`read ${count} frames`);
  });
  Deno.bench(`receiveFrameBatches, ${name}`, { group: name }, async () => {
    let count = 0;
    const connection = fakeConnection(readBytes);
    for await (const frames of receiveFrameBatches(connection, new ChannelDecoder())) {
      count += frames.length;
    }
    if (count !== FRAMES) throw new Error(`read ${count} frames`);
  });
  Deno.bench(`FrameReader, ${name}`, { group: name }, async () => {
    let count = 0;
    const reader = new FrameReader(fakeConnection(readBytes), new ChannelDecoder());
    for (let frames; (frames = await reader.next());) count += frames.length;
    if (count !== FRAMES) throw new Error(`read ${count} frames`);
  });
}
