/**
 * Test helpers: timeouts instead of sleeps, a test peer that collects decoded
 * frames from a real socket, and a launcher for the real entry points.
 *
 * @module
 */

import fc from "fast-check";
import { type FrameDecoder, readFrames } from "../protocols/frames.ts";
import { isFrameError } from "../protocols/errors.ts";
import { writeAll } from "../net/bytes.ts";

/** Resolves with `promise`, or rejects after `ms` naming `what`. The timer is always cleared. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` until it returns true (every 10 ms), failing after `ms`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The TCP port of a listening address. */
export function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}

/**
 * A test client on a real socket: decodes everything the server sends with
 * `decoder` and hands frames out in order with a timeout.
 */
export class Peer<T> {
  readonly conn: Deno.Conn;
  readonly frames: T[] = [];
  /** Set when the server closed the connection. */
  ended = false;
  /** Set when reading or decoding failed; {@link Peer.next} and {@link Peer.take} then throw it. */
  error?: unknown;
  #waiters: (() => void)[] = [];
  #loop: Promise<void>;

  constructor(conn: Deno.Conn, decoder: FrameDecoder<T>) {
    this.conn = conn;
    if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
    this.#loop = (async () => {
      try {
        for await (const frame of readFrames(conn.readable, decoder)) {
          this.frames.push(frame);
          this.#wake();
        }
      } catch (error) {
        // This side closing the socket ends the read; anything else is the test's business.
        if (
          !(error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted)
        ) {
          this.error = error;
        }
      }
      this.ended = true;
      this.#wake();
    })();
  }

  /** Connects to a TCP server. */
  static async connect<T>(addr: Deno.Addr, decoder: FrameDecoder<T>): Promise<Peer<T>> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(addr) });
    return new Peer(conn, decoder);
  }

  #wake() {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Sends raw bytes. */
  async write(bytes: Uint8Array): Promise<void> {
    await writeAll(this.conn, bytes);
  }

  /** Resolves with the next frame, failing after `ms`. */
  async next(ms = 3000): Promise<T> {
    await this.waitFor(() => this.frames.length > 0 || this.ended, ms, "a frame");
    if (this.frames.length === 0) {
      throw this.error ?? new Error("Connection closed before a frame arrived");
    }
    return this.frames.shift()!;
  }

  /** Resolves with the next `count` frames. */
  async take(count: number, ms = 3000): Promise<T[]> {
    await this.waitFor(() => this.frames.length >= count || this.ended, ms, `${count} frames`);
    if (this.frames.length < count) {
      throw this.error ??
        new Error(`Connection closed after ${this.frames.length} of ${count} frames`);
    }
    return this.frames.splice(0, count);
  }

  /** Resolves when the server has closed the connection. */
  async closedByServer(ms = 3000): Promise<void> {
    await this.waitFor(() => this.ended, ms, "the server to close the connection");
  }

  /** Waits until `check()` holds. */
  async waitFor(check: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = performance.now() + ms;
    while (!check()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
      await within(new Promise<void>((r) => this.#waiters.push(r)), left, what).catch(() => {});
    }
  }

  /** Closes the socket and waits for the reader to finish. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    await this.#loop;
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/** A real entry point started as a child process. */
export class EntryProcess {
  readonly child: Deno.ChildProcess;
  output = "";
  #pump: Promise<void>;
  #waiters: (() => void)[] = [];
  #stdin?: WritableStreamDefaultWriter<Uint8Array>;
  status?: Deno.CommandStatus;
  #statusPromise: Promise<Deno.CommandStatus>;

  constructor(child: Deno.ChildProcess, piped: boolean) {
    this.child = child;
    if (piped) this.#stdin = child.stdin.getWriter();
    const decoder = new TextDecoder();
    const pump = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) {
        this.output += decoder.decode(chunk, { stream: true });
        for (const w of this.#waiters.splice(0)) w();
      }
    };
    this.#pump = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => {});
    this.#statusPromise = child.status.then((s) => {
      this.status = s;
      for (const w of this.#waiters.splice(0)) w();
      return s;
    });
  }

  /**
   * Starts `deno run <flags> <script> <args>` in the project root (or `cwd`, with the
   * script still found in the project). With `stdin: true` the child's standard input
   * is a pipe ({@link EntryProcess.type}).
   */
  static start(
    script: string,
    args: string[],
    flags: string[],
    options: { stdin?: boolean; env?: Record<string, string>; cwd?: string } = {},
  ): EntryProcess {
    const root = new URL("..", import.meta.url).pathname;
    return EntryProcess.spawn(Deno.execPath(), [
      "run",
      "--quiet",
      ...flags,
      `${root}${script}`,
      ...args,
    ], {
      ...options,
      cwd: options.cwd ?? root,
    });
  }

  /** Starts any program (a compiled binary, say) with piped output. */
  static spawn(
    program: string,
    args: string[],
    options: { stdin?: boolean; env?: Record<string, string>; cwd?: string } = {},
  ): EntryProcess {
    const child = new Deno.Command(program, {
      args,
      cwd: options.cwd,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...options.env },
    }).spawn();
    return new EntryProcess(child, options.stdin ?? false);
  }

  /** How much output has arrived so far: pass it as `since` to wait only for later output. */
  mark(): number {
    return this.output.length;
  }

  /**
   * Waits until the output (from offset `since`, default the start) matches `pattern`
   * and returns the match.
   */
  async waitFor(pattern: RegExp, ms = 10000, since = 0): Promise<RegExpMatchArray> {
    const deadline = performance.now() + ms;
    while (true) {
      const m = this.output.slice(since).match(pattern);
      if (m) return m;
      if (this.status) {
        throw new Error(`Process exited (${this.status.code}) before ${pattern}:\n${this.output}`);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${pattern} in output:\n${this.output}`);
      await within(new Promise<void>((r) => this.#waiters.push(r)), left, String(pattern)).catch(
        () => {},
      );
    }
  }

  /** Waits for the `Listening on HOST:PORT` log line and returns the port. */
  async listeningPort(ms = 10000): Promise<number> {
    const m = await this.waitFor(/Listening on "?(?:\[[0-9a-fA-F:.]+\]|[\w.-]+):(\d+)/, ms);
    return Number(m[1]);
  }

  /** Types a line on the child's stdin. */
  async type(text: string): Promise<void> {
    await this.#stdin!.write(new TextEncoder().encode(text));
  }

  /** Closes the child's stdin (end of input). */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close().catch(() => {});
    this.#stdin = undefined;
  }

  /** Waits for the child to exit and returns its status. */
  async exited(ms = 10000): Promise<Deno.CommandStatus> {
    const status = await within(this.#statusPromise, ms, "the process to exit");
    await this.#pump;
    await this.closeStdin();
    return status;
  }

  /** Sends a signal (default SIGTERM) and waits for the exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (!this.status) {
      try {
        this.child.kill(signal);
      } catch { /* already gone */ }
    }
    try {
      return await this.exited(5000);
    } catch {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
      return await this.exited(5000);
    }
  }

  async [Symbol.asyncDispose]() {
    await this.stop();
  }
}

/** True where tmux is installed (terminal tests are skipped, and say so, where it is not). */
export async function hasTmux(): Promise<boolean> {
  try {
    return (await new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

/**
 * A private tmux server for driving terminal clients as a person would:
 * `start` runs a command in a new window, `type` sends keys, `screen` reads
 * the visible lines (trailing blanks dropped).
 */
export class Tmux {
  readonly socket = `parley-test-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;

  async #run(...args: string[]): Promise<string> {
    const out = await new Deno.Command("tmux", {
      args: ["-L", this.socket, ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    return new TextDecoder().decode(out.stdout);
  }

  /**
   * Starts `deno run <flags> <script> <args>` in a new 80x24 session named
   * `name`, with `env` added to its environment. When the program exits the
   * pane shows `[exited CODE]` and stays open, so tests can read the code.
   */
  async start(
    name: string,
    script: string,
    args: string[],
    flags: string[],
    options: { env?: Record<string, string> } = {},
  ): Promise<void> {
    const root = new URL("..", import.meta.url).pathname;
    const quote = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;
    const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${quote(v)}`);
    const command = [Deno.execPath(), "run", "--quiet", ...flags, script, ...args].map(quote);
    await this.#run(
      "new-session",
      "-d",
      "-s",
      name,
      "-x",
      "80",
      "-y",
      "24",
      "-c",
      root,
      "sh",
      "-c",
      `env ${env.join(" ")} ${command.join(" ")}; echo "[exited $?]"; exec cat >/dev/null`,
    );
  }

  /** Types `text` and presses Enter. */
  async type(name: string, text: string): Promise<void> {
    await this.#run("send-keys", "-t", name, "-l", text);
    await this.#run("send-keys", "-t", name, "Enter");
  }

  /** Types `text` without pressing Enter. */
  async typeText(name: string, text: string): Promise<void> {
    await this.#run("send-keys", "-t", name, "-l", text);
  }

  /** Presses keys by tmux name (`Left`, `Home`, `C-a`, `BSpace`, `Up`, ...), one after another. */
  async keys(name: string, ...keys: string[]): Promise<void> {
    await this.#run("send-keys", "-t", name, ...keys);
  }

  /** The cursor's column and row. */
  async cursor(name: string): Promise<{ x: number; y: number }> {
    const [x, y] = (await this.#run("display-message", "-p", "-t", name, "#{cursor_x} #{cursor_y}"))
      .trim().split(" ").map(Number);
    return { x, y };
  }

  /** The pane's title (a program can set it with `ESC ] 0;...BEL`). */
  async title(name: string): Promise<string> {
    return (await this.#run("display-message", "-p", "-t", name, "#{pane_title}")).trim();
  }

  /** The screen with its colours and attributes as SGR escape codes (`capture-pane -e`). */
  async styledScreen(name: string): Promise<string> {
    return await this.#run("capture-pane", "-p", "-e", "-t", name);
  }

  /** Waits until the program in `name` has exited and returns its exit code. */
  async exitCode(name: string, ms = 10000): Promise<number> {
    const screen = await this.waitForLine(name, /^\[exited \d+\]$/, ms);
    return Number(/^\[exited (\d+)\]$/.exec(screen.findLast((l) => /^\[exited/.test(l))!)![1]);
  }

  /** The screen's non-empty lines, trailing spaces removed. */
  async screen(name: string): Promise<string[]> {
    return (await this.#run("capture-pane", "-p", "-J", "-t", name)).split("\n").map((l) =>
      l.trimEnd()
    )
      .filter((l) => l !== "");
  }

  /** Waits until the screen of `name` holds a line equal to `line` (or matching it). */
  async waitForLine(name: string, line: string | RegExp, ms = 10000): Promise<string[]> {
    let last: string[] = [];
    await waitUntil(
      async () => {
        last = await this.screen(name);
        return last.some((l) => typeof line === "string" ? l === line : line.test(l));
      },
      ms,
      `${line} on ${name}'s screen`,
    ).catch((e) => {
      throw new Error(`${e.message}; screen was:\n${last.join("\n")}`);
    });
    return last;
  }

  /** Kills the tmux server and everything in it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#run("kill-server");
  }
}

/** Fuzz input for a decoder: random bytes, or a valid sample with one byte changed. */
export function fuzzBytes(valid: Uint8Array, maxRandomLength: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: maxRandomLength }),
    fc.tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(
      ([i, b]) => {
        const copy = valid.slice();
        copy[i] = b;
        return copy;
      },
    ),
  );
}

/**
 * Feeds a decoder random and mutated input in chunks of every size up to
 * `maxStep`, then ends it: it may throw only the toolkit's frame errors.
 */
export function fuzzDecoder(
  make: () => FrameDecoder<unknown>,
  valid: Uint8Array,
  options: { maxLength: number; maxStep: number; runs?: number },
): void {
  fc.assert(
    fc.property(
      fuzzBytes(valid, options.maxLength),
      fc.integer({ min: 1, max: options.maxStep }),
      (bytes, step) => {
        const decoder = make();
        try {
          for (let o = 0; o < bytes.length; o += step) decoder.decode(bytes.subarray(o, o + step));
          decoder.end();
        } catch (error) {
          if (!isFrameError(error)) throw new Error(`unexpected ${error}`, { cause: error });
        }
      },
    ),
    { numRuns: options.runs ?? 1000 },
  );
}

/** Typed lines as the bytes of a piped stdin (each line gets its `\n`). */
export function typedInput(
  lines: AsyncIterable<string> | Iterable<string>,
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return ReadableStream.from(
    (async function* () {
      for await (const line of lines) yield encoder.encode(`${line}\n`);
    })(),
  );
}
