/**
 * Terminal helpers shared by the interactive clients: reading typed lines and
 * writing to the screen without blocking the event loop on partial writes.
 *
 * @module
 */

import { writeAllSync } from "../net/bytes.ts";
import { UsageError } from "./command.ts";
import { visible } from "./render.ts";

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

/**
 * Writes a line to stderr, with its control characters made visible (it may
 * quote what a server sent: an ERR text, a refusal, a frame error).
 */
export function printError(text: string): void {
  writeAllSync(Deno.stderr, encoder.encode(`${visible(text)}\n`));
}

/**
 * Reads a password: without echo from a terminal (raw mode, Backspace works,
 * Ctrl+C cancels), or as the first line of stdin when it is not a terminal.
 */
export async function readPassword(prompt: string): Promise<string> {
  if (Deno.stdin.isTerminal()) {
    const encoder = new TextEncoder();
    Deno.stdout.writeSync(encoder.encode(prompt));
    Deno.stdin.setRaw(true);
    try {
      let text = "";
      const buf = new Uint8Array(1);
      while (true) {
        const n = await Deno.stdin.read(buf);
        if (n === null || buf[0] === 13 || buf[0] === 10) break;
        if (buf[0] === 3) throw new UsageError("cancelled");
        if (buf[0] === 127 || buf[0] === 8) text = text.slice(0, -1);
        else text += String.fromCharCode(buf[0]);
      }
      return new TextDecoder().decode(Uint8Array.from(text, (c) => c.charCodeAt(0)));
    } finally {
      Deno.stdin.setRaw(false);
      Deno.stdout.writeSync(encoder.encode("\n"));
    }
  }
  for await (const line of readLines()) return line;
  return "";
}
