/**
 * The one session runner of the terminal clients: the read loop (the
 * server's side) and the typing loop (the user's side) run at once, and the
 * first to end decides how the session ended and with which exit code.
 *
 * - The user quits (`/quit`, Ctrl+D, Ctrl+C, end of a piped stdin): `quit`,
 *   exit code 0. A server that closes the connection after a goodbye the user
 *   asked for is still a quit.
 * - The server closes or resets the connection, or a send fails because the
 *   connection is gone: `closed`, exit code 1.
 * - The server sends bytes that do not frame: `broken`, exit code 1.
 * - Anything else is a bug and is rethrown (never swallowed).
 *
 * @module
 */

import { isFrameError } from "../protocols/errors.ts";
import { isConnectionGone } from "../net/dial.ts";
import type { ClientConsole } from "./console.ts";
import { printError } from "./terminal.ts";

/** How a session ended. */
export type SessionEnd =
  | { kind: "quit" }
  | { kind: "closed" }
  | { kind: "broken"; reason: string };

/** The two sides of a client session. */
export interface SessionParts {
  /** Reads from the server until it closes the connection. */
  read(): Promise<void>;
  /**
   * Handles typed lines until the user quits; call `quitting()` before a
   * goodbye that makes the server close the connection.
   */
  type(quitting: () => void): Promise<void>;
  /** Closes the connection (this must end `read()`). */
  close(): void | Promise<void>;
}

/** The session end an error from a connection means; an error that is not the connection's is rethrown. */
export function sessionEndOf(error: unknown): SessionEnd {
  if (isFrameError(error)) return { kind: "broken", reason: (error as Error).message };
  if (isConnectionGone(error)) return { kind: "closed" };
  throw error;
}

/**
 * Runs a session to its end (see the module doc) and closes the connection.
 *
 * @example
 * ```ts
 * import { runSession } from "./session.ts";
 * const connection = Promise.withResolvers<void>(); // its reader ends when it is closed
 * const end = await runSession({
 *   read: () => connection.promise,
 *   type: async () => {}, // the user quits at once
 *   close: () => connection.resolve(),
 * });
 * console.assert(end.kind === "quit");
 * ```
 */
export async function runSession(parts: SessionParts): Promise<SessionEnd> {
  let quitting = false;
  const reading = parts.read().then((): SessionEnd => ({ kind: "closed" }), sessionEndOf);
  const typing = parts.type(() => quitting = true).then(
    (): SessionEnd => ({ kind: "quit" }),
    sessionEndOf,
  );
  let end: SessionEnd;
  try {
    end = await Promise.race([reading, typing]);
    if (end.kind === "closed" && quitting) end = await typing; // the server answered our goodbye
  } finally {
    await parts.close();
  }
  if (end.kind === "quit") await reading;
  return end;
}

/** Exit code of a session end: 0 for a quit, 1 otherwise (SPEC.md 7.2). */
export function exitCodeOf(end: SessionEnd): number {
  return end.kind === "quit" ? 0 : 1;
}

/**
 * Ends a client after its session: gives the terminal back, says in one line
 * why the session ended when the server ended it (on stderr, or on the
 * console where the protocol puts it there, as the channel client does), and
 * exits with {@link exitCodeOf}.
 */
export function exitAfter(
  console: ClientConsole,
  end: SessionEnd,
  closedText: string,
  options: { onConsole?: boolean } = {},
): never {
  if (end.kind === "quit") {
    console.finish();
    Deno.exit(0);
  }
  const text = end.kind === "broken" ? `${closedText} (${end.reason})` : closedText;
  if (options.onConsole) console.finish(text);
  else {
    console.finish();
    printError(text);
  }
  Deno.exit(1);
}
