/**
 * Terminal helpers shared by the interactive clients: reading typed lines and
 * writing to the screen without blocking the event loop on partial writes.
 *
 * @module
 */

import { writeAllSync } from "../servers/_net.ts";

const encoder = new TextEncoder();

/**
 * Yields each line of a byte stream (stdin by default), without its line
 * ending (`\n` or `\r\n`). A last line without a newline is yielded too.
 */
export async function* readLines(
  readable: ReadableStream<Uint8Array> = Deno.stdin.readable,
): AsyncGenerator<string> {
  let pending = "";
  const reader = readable.pipeThrough(new TextDecoderStream()).getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      let nl: number;
      while ((nl = pending.indexOf("\n")) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        yield line.endsWith("\r") ? line.slice(0, -1) : line;
      }
    }
    if (pending.length > 0) yield pending;
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Where a client writes what a person sees. */
export interface Screen {
  /** Writes text as is (no newline added). */
  write(text: string): void;
}

/** The process's standard output as a {@link Screen}. */
export const stdoutScreen: Screen = {
  write(text: string): void {
    writeAllSync(Deno.stdout, encoder.encode(text));
  },
};

/** Writes a line to stderr. */
export function printError(text: string): void {
  writeAllSync(Deno.stderr, encoder.encode(`${text}\n`));
}
