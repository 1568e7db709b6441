/**
 * The screen and keyboard of a terminal client (SPEC.md 7): one object every
 * client prints through and reads typed lines from.
 *
 * - Interactive (stdin and stdout are terminals): raw mode, the shared
 *   {@link LineEditor}, lines printed above the input line with the
 *   half-typed input redrawn after them, `HH:MM ` on received lines, colours.
 * - Plain (anything else): exactly the bytes of SPEC.md sections 1-5, no
 *   timestamps, colours or editing. Every line still goes through
 *   {@link renderLine}, so control characters are made visible either way.
 *
 * @module
 */

import { type CommandSpec, type FlagSpec, type ParsedCli, UsageError } from "./command.ts";
import { KeyDecoder, LineEditor } from "./line_editor.ts";
import { type Line, renderLine } from "./render.ts";
import { readLines, type Screen, stdoutScreen } from "./terminal.ts";

/** The flags every terminal client takes (SPEC.md 7.1). */
export const CLIENT_FLAGS: Record<string, FlagSpec> = {
  color: {
    type: "string",
    default: "auto",
    value: "WHEN",
    description: "auto | always | never (auto: on in a terminal unless NO_COLOR is set)",
  },
  "no-timestamps": {
    type: "boolean",
    description: "do not start received lines with HH:MM (interactive mode)",
  },
};

/** Non-interactive output bytes, as SPEC.md sections 1-5 give them. */
export interface PlainFormat {
  /** Written by {@link ClientConsole.ready} (the channel's `[Me] `, the timestamp's `> `). */
  prompt?: string;
  /** Written before every printed line (the channel's `\r    \r`). */
  wipe?: string;
  /** Write the prompt again after every printed line (the channel client does). */
  promptAfterLine?: boolean;
}

/** Options of {@link ClientConsole}. */
export interface ConsoleOptions {
  /** The interactive prompt (default `> `). */
  prompt?: string;
  /** Interactive: `HH:MM ` before received lines (default true). */
  timestamps?: boolean;
  /** Interactive: colours (default false). */
  color?: boolean;
  /** Interactive: leave a submitted line on screen after the prompt (default: erase it). */
  keepInput?: boolean;
  /** The non-interactive format. */
  plain?: PlainFormat;
  /** Interactive or plain (default: stdin and stdout are both terminals). */
  interactive?: boolean;
  /** Where typed bytes come from (default stdin; raw mode when it is a terminal). */
  input?: ReadableStream<Uint8Array>;
  /** Where output goes (default stdout). */
  output?: Screen;
  /** Terminal width in columns (default: asked from the terminal, else 80). */
  width?: () => number;
  /** The clock for timestamps (default `new Date()`). */
  now?: () => Date;
}

/** Whether stdin and stdout are both terminals. */
export function isInteractive(): boolean {
  return Deno.stdin.isTerminal() && Deno.stdout.isTerminal();
}

/**
 * Reads {@link CLIENT_FLAGS} and the environment into console options:
 * colours follow `--color` (`auto` is on unless `NO_COLOR` is set and not
 * empty; `always` wins over `NO_COLOR`; plain output never has colours).
 */
export function consoleFlags(
  values: ParsedCli["values"],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): { color: boolean; timestamps: boolean } {
  const when = String(values.color ?? "auto");
  if (!["auto", "always", "never"].includes(when)) {
    throw new UsageError(`--color must be one of auto, always, never, got '${when}'`);
  }
  const noColor = (env("NO_COLOR") ?? "") !== "";
  return {
    color: when === "always" || (when === "auto" && !noColor),
    timestamps: !values["no-timestamps"],
  };
}

/** Adds {@link CLIENT_FLAGS} to a client's command spec (before its `--help`). */
export function withClientFlags(spec: CommandSpec): CommandSpec {
  const { help, ...rest } = spec.flags;
  return { ...spec, flags: { ...rest, ...CLIENT_FLAGS, ...(help ? { help } : {}) } };
}

/** After a piped stdin ends: how long the server must be quiet before the client quits, ms. */
export const PLAIN_LINGER_MS = 300;
/** After a piped stdin ends: the longest the client waits for the server's last answers, ms. */
export const PLAIN_MAX_LINGER_MS = 2000;

/** A client's screen and keyboard (see the module doc). */
export class ClientConsole {
  /** True when the line editor runs (stdin and stdout are terminals). */
  readonly interactive: boolean;
  readonly #options: ConsoleOptions;
  readonly #out: Screen;
  readonly #editor = new LineEditor();
  #prompt: string;
  #typed: string[] = [];
  #ended = false;
  #wake: (() => void)[] = [];
  #asking?: { prompt: string; resolve: (line: string | undefined) => void };
  #started = false;
  #raw = false;
  #plainLines?: AsyncGenerator<string>;
  #resize = () => this.#draw();
  #restore = () => {
    try {
      Deno.stdin.setRaw(false);
    } catch { /* stdin is gone */ }
  };
  #closed = false;
  #lastOutput = 0;

  /** Makes the console; nothing is read until {@link ClientConsole.lines} or {@link ClientConsole.ask}. */
  constructor(options: ConsoleOptions = {}) {
    this.#options = options;
    this.interactive = options.interactive ?? isInteractive();
    this.#out = options.output ?? stdoutScreen;
    this.#prompt = options.prompt ?? "> ";
  }

  /** Changes the interactive prompt (the IM client shows its conversation there). */
  setPrompt(prompt: string): void {
    this.#prompt = prompt;
    if (this.#started && !this.#asking) this.#draw();
  }

  /**
   * Shows a line above the input line. `received` lines (from the network)
   * get `HH:MM ` in interactive mode unless timestamps are off.
   */
  print(line: Line, options: { received?: boolean } = {}): void {
    this.#lastOutput = performance.now();
    if (!this.interactive) {
      const plain = this.#options.plain ?? {};
      const after = plain.promptAfterLine ? plain.prompt ?? "" : "";
      this.#out.write(`${plain.wipe ?? ""}${renderLine(line)}\n${after}`);
      return;
    }
    const stamp = options.received && this.#options.timestamps !== false;
    const text = renderLine(line, {
      color: this.#options.color,
      time: stamp ? (this.#options.now?.() ?? new Date()) : undefined,
    });
    this.#out.write(`\r\x1b[K${text}\r\n`);
    if (this.#started) this.#draw();
  }

  /**
   * Shows several lines at once (a help text, a channel list). In plain mode
   * they are written as one message: the wipe, the lines joined by `\n`, a
   * newline and the prompt.
   */
  printLines(lines: readonly Line[], options: { received?: boolean } = {}): void {
    this.#lastOutput = performance.now();
    if (this.interactive) {
      for (const line of lines) this.print(line, options);
      return;
    }
    const plain = this.#options.plain ?? {};
    const after = plain.promptAfterLine ? plain.prompt ?? "" : "";
    const text = lines.map((line) => renderLine(line)).join("\n");
    this.#out.write(`${plain.wipe ?? ""}${text}\n${after}`);
  }

  /** Plain mode: writes the prompt, as the seed's clients do before each input. */
  ready(): void {
    if (!this.interactive && this.#options.plain?.prompt) {
      this.#out.write(this.#options.plain.prompt);
    }
  }

  /**
   * The lines the user submits, until end of input (Ctrl+D on an empty line,
   * Ctrl+C, or the end of a piped stdin).
   */
  async *lines(): AsyncGenerator<string> {
    if (!this.interactive) {
      while (true) {
        const next = await this.#plain().next();
        if (next.done) return await this.#linger();
        yield next.value;
      }
    }
    this.#start();
    while (true) {
      while (this.#typed.length === 0 && !this.#ended) {
        await new Promise<void>((resolve) => this.#wake.push(resolve));
      }
      if (this.#typed.length === 0) return;
      yield this.#typed.shift()!;
    }
  }

  /**
   * Asks one question (a name, a password) and resolves with the answer, or
   * `undefined` at end of input. `hidden` input is not echoed.
   */
  async ask(prompt: string, options: { hidden?: boolean } = {}): Promise<string | undefined> {
    if (!this.interactive) {
      this.#out.write(prompt);
      const next = await this.#plain().next();
      return next.done ? undefined : next.value;
    }
    if (this.#ended) return undefined;
    const answer = new Promise<string | undefined>((resolve) => {
      this.#asking = { prompt, resolve };
    });
    this.#editor.hidden = options.hidden ?? false;
    this.#start();
    this.#draw();
    return await answer;
  }

  /** Prints a last line (if any), erases the input line and gives the terminal back. */
  finish(line?: Line): void {
    if (this.#closed) return;
    if (line !== undefined) {
      if (this.interactive) this.#out.write(`\r\x1b[K${renderLine(line)}\r\n`);
      else this.#out.write(`${this.#options.plain?.wipe ?? ""}${renderLine(line)}\n`);
    } else if (this.interactive && this.#started) {
      this.#out.write("\r\x1b[K");
    }
    this.close();
  }

  /** Gives the terminal back (cooked mode) and stops the line queue. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#end();
    if (this.#raw) {
      this.#restore();
      try {
        Deno.removeSignalListener("SIGWINCH", this.#resize);
      } catch { /* not added */ }
    }
  }

  /**
   * After a piped stdin ends, the answers to its last lines are still on their
   * way: keep showing what arrives until the server has been quiet for
   * {@link PLAIN_LINGER_MS} (at most {@link PLAIN_MAX_LINGER_MS}), as `nc` shows
   * what comes after its input ends. Only for the real stdin (tests that pass
   * `input` end at once).
   */
  async #linger(): Promise<void> {
    if (this.#options.input) return;
    const deadline = performance.now() + PLAIN_MAX_LINGER_MS;
    this.#lastOutput = Math.max(this.#lastOutput, performance.now());
    while (!this.#closed) {
      const wait = Math.min(this.#lastOutput + PLAIN_LINGER_MS, deadline) - performance.now();
      if (wait <= 0) return;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  #plain(): AsyncGenerator<string> {
    this.#plainLines ??= readLines(this.#options.input ?? Deno.stdin.readable);
    return this.#plainLines;
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    const input = this.#options.input;
    if (!input) {
      Deno.stdin.setRaw(true);
      this.#raw = true;
      Deno.addSignalListener("SIGWINCH", this.#resize);
      // Whatever ends the process (a bug included), the terminal goes back to cooked mode.
      for (const event of ["unload", "error", "unhandledrejection"]) {
        globalThis.addEventListener(event, this.#restore);
      }
    }
    void this.#readKeys(input ?? Deno.stdin.readable);
    this.#draw();
  }

  async #readKeys(input: ReadableStream<Uint8Array>): Promise<void> {
    const keys = new KeyDecoder();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of input) {
        if (this.#closed) break;
        for (const key of keys.decode(decoder.decode(chunk, { stream: true }))) {
          this.#key(key);
          if (this.#ended) return;
        }
      }
    } catch { /* stdin went away: that is the end of input */ }
    this.#end();
  }

  #key(key: Parameters<LineEditor["handle"]>[0]): void {
    const result = this.#editor.handle(key);
    switch (result.kind) {
      case "submit":
        this.#submitted(result.line);
        break;
      case "quit":
        this.#out.write("\r\x1b[K");
        this.#end();
        break;
      case "redraw":
        this.#out.write("\x1b[H\x1b[2J");
        this.#draw();
        break;
      default:
        this.#draw();
    }
  }

  #submitted(line: string): void {
    const asking = this.#asking;
    if (asking) {
      this.#asking = undefined;
      this.#out.write(`\r\x1b[K${renderLine(asking.prompt)}\r\n`);
      this.#editor.hidden = false;
      asking.resolve(line);
      this.#draw();
      return;
    }
    if (this.#options.keepInput) {
      this.#out.write(`\r\x1b[K${renderLine([this.#prompt, line])}\r\n`);
    } else {
      this.#out.write("\r\x1b[K");
    }
    this.#typed.push(line);
    for (const w of this.#wake.splice(0)) w();
    this.#draw();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#asking?.resolve(undefined);
    this.#asking = undefined;
    for (const w of this.#wake.splice(0)) w();
  }

  #draw(): void {
    if (this.#ended || this.#closed) return;
    const prompt = this.#asking?.prompt ?? this.#prompt;
    const view = this.#editor.view(prompt, this.#width());
    const move = view.cursor > 0 ? `\x1b[${view.cursor}C` : "";
    this.#out.write(`\r${view.text}\x1b[K\r${move}`);
  }

  #width(): number {
    if (this.#options.width) return this.#options.width();
    try {
      return Deno.consoleSize().columns || 80;
    } catch {
      return 80;
    }
  }
}

/** A {@link Screen} that collects what is written in `text` (for tests). */
export function bufferScreen(): Screen & { text: string } {
  const screen = {
    text: "",
    write(text: string) {
      screen.text += text;
    },
  };
  return screen;
}
