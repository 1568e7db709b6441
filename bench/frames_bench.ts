/**
 * Framing-core baseline: how fast decoders turn bytes into frames, with the
 * input delivered whole and one byte at a time.
 *
 * Run: `deno task bench` (or `deno bench bench/frames_bench.ts`). Each
 * benchmark's iteration decodes FRAMES frames; divide to get frames/s, and
 * multiply by the frame size for MB/s (see the group names).
 *
 * @module
 */

import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { ByteQueue } from "../protocols/frames.ts";

const FRAMES = 1000;

function channelInput(): Uint8Array {
  const out = new Uint8Array(FRAMES * 200);
  for (let i = 0; i < FRAMES; i++) {
    out.set(encodeChannelFrame(`message number ${i} from bench`), i * 200);
  }
  return out;
}

const channel = channelInput();

Deno.bench({
  name: "channel: 1000 x 200-byte frames, whole buffer",
  group: "channel 200 B",
  baseline: true,
  fn() {
    const frames = new ChannelDecoder().decode(channel);
    if (frames.length !== FRAMES) throw new Error("lost frames");
  },
});

Deno.bench({
  name: "channel: 1000 x 200-byte frames, 1-byte chunks",
  group: "channel 200 B",
  fn() {
    const d = new ChannelDecoder();
    let n = 0;
    for (let i = 0; i < channel.length; i++) n += d.decode(channel.subarray(i, i + 1)).length;
    if (n !== FRAMES) throw new Error("lost frames");
  },
});

Deno.bench({
  name: "ByteQueue: append 64 KiB and take 1 KiB pieces",
  group: "byte queue",
  fn() {
    const q = new ByteQueue();
    const block = new Uint8Array(64 * 1024);
    q.append(block);
    while (q.length >= 1024) q.take(1024);
  },
});
