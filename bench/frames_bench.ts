/**
 * Framing-core baseline: how fast each decoder turns bytes into frames, with
 * the input delivered whole and one byte at a time, for small and large frames.
 *
 * Run: `deno task bench` (or `deno bench bench/frames_bench.ts`). Every
 * iteration decodes the number of frames its name gives: frames per second is
 * that count times iter/s, and MB/s is frames per second times the frame size
 * in the name.
 *
 * @module
 */

import { ChannelDecoder, encodeChannelFrame } from "../protocols/channel.ts";
import { encodeEurechat, EurechatDecoder } from "../protocols/eurechat.ts";
import { CrcDecoder, encodeCrc } from "../protocols/crc.ts";
import { encodeIm, ImLineDecoder } from "../protocols/im.ts";
import type { FrameDecoder } from "../protocols/frames.ts";

function repeat(frame: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(frame.length * count);
  for (let i = 0; i < count; i++) out.set(frame, i * frame.length);
  return out;
}

function bench(
  group: string,
  name: string,
  input: Uint8Array,
  frames: number,
  make: () => FrameDecoder<unknown>,
) {
  Deno.bench({
    name: `${name}, whole buffer`,
    group,
    baseline: true,
    fn() {
      if (make().decode(input).length !== frames) throw new Error("lost frames");
    },
  });
  Deno.bench({
    name: `${name}, 1-byte chunks`,
    group,
    fn() {
      const d = make();
      let n = 0;
      for (let i = 0; i < input.length; i++) n += d.decode(input.subarray(i, i + 1)).length;
      if (n !== frames) throw new Error("lost frames");
    },
  });
}

const channelFrame = encodeChannelFrame("[Alice] a typical chat line of a few words");
bench(
  "channel 200 B",
  "channel: 1000 x 200 B",
  repeat(channelFrame, 1000),
  1000,
  () => new ChannelDecoder(),
);

const small = encodeEurechat("PING"); // 7 bytes
bench(
  "eurechat small",
  "eurechat: 1000 x 7 B (PING 0)",
  repeat(small, 1000),
  1000,
  () => new EurechatDecoder(),
);
const large = encodeEurechat("MESSAGE", ["alice"], new Uint8Array(65536).fill(0x61)); // 65,553 bytes
bench(
  "eurechat 64 KiB",
  "eurechat: 16 x 64 KiB MESSAGE",
  repeat(large, 16),
  16,
  () => new EurechatDecoder(),
);

const chat = encodeCrc({ kind: "chat", source: 1, destination: 2, content: "x".repeat(51) }); // 64 bytes
bench("crc 64 B", "crc: 1000 x 64 B chat", repeat(chat, 1000), 1000, () => new CrcDecoder());

const line = encodeIm({ command: "SEND_MESSAGE", conversation: 1, message: "a typical chat line" }); // 39 bytes
bench(
  "im line",
  "im: 1000 x 39 B SEND_MESSAGE line",
  repeat(line, 1000),
  1000,
  () => new ImLineDecoder(),
);
