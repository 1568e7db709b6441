/**
 * Byte helpers of the net layer: write loops that finish partial writes, and
 * joining chunks.
 *
 * @module
 */

/**
 * Writes all of `bytes` (a write may take only part). For clients and tools
 * that write in turn; servers use {@link Connection.send}.
 *
 * @example
 * ```ts
 * import { writeAll } from "./bytes.ts";
 * const sink = { write: (p: Uint8Array) => Promise.resolve(Math.min(p.length, 3)) };
 * await writeAll(sink, new Uint8Array(10));
 * ```
 */
export async function writeAll(
  writer: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await writer.write(bytes.subarray(offset));
}

/** Writes all of `bytes` to a synchronous writer (stdout, a log file). */
export function writeAllSync(
  writer: { writeSync(p: Uint8Array): number },
  bytes: Uint8Array,
): void {
  for (let offset = 0; offset < bytes.length;) offset += writer.writeSync(bytes.subarray(offset));
}

/** Concatenates byte arrays into one. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
