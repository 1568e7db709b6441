// deno-lint-ignore-file no-control-regex
/**
 * The shared line editor of the terminal clients (SPEC.md 7.1), as pure
 * state: keys in, a buffer, a cursor and a history out. No I/O here; the
 * terminal driver in `console.ts` feeds it the bytes of a raw-mode stdin and
 * draws what {@link LineEditor.view} returns.
 *
 * Keys: Left/Right (Ctrl+B/F), Home/End (Ctrl+A/E), Backspace, Delete,
 * Ctrl+U (erase to the start), Ctrl+K (erase to the end), Ctrl+W (erase the
 * word before the cursor), Ctrl+Left/Right (word moves), Up/Down (Ctrl+P/N)
 * through the last 500 lines, Ctrl+L (redraw), Ctrl+C (quit), Ctrl+D (quit on
 * an empty line, else Delete).
 *
 * @module
 */

import { columns, visible } from "./render.ts";

/** A decoded key press. */
export type Key =
  | { kind: "text"; text: string }
  | {
    kind:
      | "enter"
      | "backspace"
      | "delete"
      | "left"
      | "right"
      | "word-left"
      | "word-right"
      | "home"
      | "end"
      | "up"
      | "down"
      | "kill-start"
      | "kill-end"
      | "kill-word"
      | "redraw"
      | "interrupt"
      | "eof";
  };

type KeyKind = Exclude<Key, { kind: "text" }>["kind"];

const CONTROL_KEYS: Record<string, KeyKind> = {
  "\r": "enter",
  "\n": "enter",
  "\x7f": "backspace",
  "\x08": "backspace",
  "\x01": "home",
  "\x05": "end",
  "\x02": "left",
  "\x06": "right",
  "\x10": "up",
  "\x0e": "down",
  "\x15": "kill-start",
  "\x0b": "kill-end",
  "\x17": "kill-word",
  "\x0c": "redraw",
  "\x03": "interrupt",
  "\x04": "eof",
};

const CSI_FINAL: Record<string, KeyKind> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
};

const CSI_TILDE: Record<string, KeyKind> = {
  "1": "home",
  "7": "home",
  "4": "end",
  "8": "end",
  "3": "delete",
};

/**
 * Turns the text read from a raw-mode terminal into {@link Key}s. An escape
 * sequence split across reads is kept until its end arrives; unknown
 * sequences and other control characters are dropped (they never reach the
 * buffer).
 *
 * @example
 * ```ts
 * import { KeyDecoder } from "./line_editor.ts";
 * const keys = new KeyDecoder().decode("hi\x1b[D\x7f");
 * console.assert(keys.map((k) => k.kind).join() === "text,left,backspace");
 * ```
 */
export class KeyDecoder {
  #pending = "";
  #afterCr = false;

  /** Decodes a chunk of typed text. */
  decode(chunk: string): Key[] {
    const input = this.#pending + chunk;
    this.#pending = "";
    const keys: Key[] = [];
    let text = "";
    const flush = () => {
      if (text) keys.push({ kind: "text", text });
      text = "";
    };
    let i = 0;
    while (i < input.length) {
      const c = input[i];
      if (c === "\x1b") {
        const rest = input.slice(i);
        const m = /^\x1b(?:\[([0-9;]*)([@-~])|O([@-~])|([bf]))/.exec(rest);
        if (m) {
          flush();
          const kind = sequenceKey(m[1], m[2] ?? m[3], m[4]);
          if (kind) keys.push({ kind });
          i += m[0].length;
        } else if (/^\x1b(\[[0-9;]*|O)?$/.test(rest)) {
          this.#pending = rest; // a sequence split across reads: wait for its end
          break;
        } else {
          i++; // ESC and something this editor does not know: drop the ESC
        }
        this.#afterCr = false;
        continue;
      }
      const control = CONTROL_KEYS[c];
      if (control) {
        if (c === "\n" && this.#afterCr) { // CR LF from a paste is one Enter
          this.#afterCr = false;
          i++;
          continue;
        }
        flush();
        keys.push({ kind: control });
      } else if (!/[\x00-\x1f\x80-\x9f]/.test(c)) {
        text += c;
      }
      this.#afterCr = c === "\r";
      i++;
    }
    flush();
    return keys;
  }
}

function sequenceKey(params: string | undefined, final: string, alt: string): KeyKind | undefined {
  if (alt) return alt === "b" ? "word-left" : "word-right";
  const ctrl = params !== undefined && /;[35]$/.test(params);
  if (final === "~") return CSI_TILDE[(params ?? "").split(";")[0]];
  if (ctrl && final === "C") return "word-right";
  if (ctrl && final === "D") return "word-left";
  return CSI_FINAL[final];
}

/** What a key asks the driver to do. */
export type EditResult =
  | { kind: "none" }
  | { kind: "submit"; line: string }
  | { kind: "redraw" }
  | { kind: "quit" };

/** How many lines of history the editor keeps. */
export const HISTORY_LINES = 500;

/** The visible part of the input line and where the cursor is in it. */
export interface EditorView {
  /** The text to draw after `\r` (prompt and visible input). */
  text: string;
  /** The cursor's column (0 is the first). */
  cursor: number;
}

/**
 * The input line being edited, with a cursor and a history of submitted
 * lines.
 *
 * @example
 * ```ts
 * import { KeyDecoder, LineEditor } from "./line_editor.ts";
 * const editor = new LineEditor();
 * const keys = new KeyDecoder().decode("helo\x1b[Dl\r");
 * const results = keys.map((k) => editor.handle(k));
 * console.assert(JSON.stringify(results.at(-1)) === '{"kind":"submit","line":"hello"}');
 * ```
 */
export class LineEditor {
  #chars: string[] = [];
  #cursor = 0;
  readonly #history: string[] = [];
  #browsing = -1;
  #draft: string[] = [];
  /** Hidden input (a password): nothing is drawn and nothing is kept in history. */
  hidden = false;

  /** The text typed so far. */
  get text(): string {
    return this.#chars.join("");
  }

  /** The cursor position, in code points from the start. */
  get cursor(): number {
    return this.#cursor;
  }

  /** The submitted lines, oldest first (at most {@link HISTORY_LINES}). */
  get history(): readonly string[] {
    return this.#history;
  }

  /** Applies one key. */
  handle(key: Key): EditResult {
    switch (key.kind) {
      case "text":
        this.#chars.splice(this.#cursor, 0, ...key.text);
        this.#cursor += [...key.text].length;
        return { kind: "none" };
      case "enter":
        return { kind: "submit", line: this.#submit() };
      case "interrupt":
        return { kind: "quit" };
      case "eof":
        if (this.#chars.length === 0) return { kind: "quit" };
        this.#chars.splice(this.#cursor, 1);
        return { kind: "none" };
      case "redraw":
        return { kind: "redraw" };
      default:
        this.#edit(key.kind);
        return { kind: "none" };
    }
  }

  #edit(kind: KeyKind): void {
    const chars = this.#chars;
    switch (kind) {
      case "backspace":
        if (this.#cursor > 0) chars.splice(--this.#cursor, 1);
        break;
      case "delete":
        chars.splice(this.#cursor, 1);
        break;
      case "left":
        this.#cursor = Math.max(0, this.#cursor - 1);
        break;
      case "right":
        this.#cursor = Math.min(chars.length, this.#cursor + 1);
        break;
      case "home":
        this.#cursor = 0;
        break;
      case "end":
        this.#cursor = chars.length;
        break;
      case "word-left":
        this.#cursor = this.#wordStart();
        break;
      case "word-right":
        this.#cursor = this.#wordEnd();
        break;
      case "kill-start":
        chars.splice(0, this.#cursor);
        this.#cursor = 0;
        break;
      case "kill-end":
        chars.splice(this.#cursor);
        break;
      case "kill-word": {
        const start = this.#wordStart();
        chars.splice(start, this.#cursor - start);
        this.#cursor = start;
        break;
      }
      case "up":
      case "down":
        this.#browse(kind === "up" ? -1 : 1);
        break;
    }
  }

  #wordStart(): number {
    let i = this.#cursor;
    while (i > 0 && /\s/.test(this.#chars[i - 1])) i--;
    while (i > 0 && !/\s/.test(this.#chars[i - 1])) i--;
    return i;
  }

  #wordEnd(): number {
    let i = this.#cursor;
    const n = this.#chars.length;
    while (i < n && /\s/.test(this.#chars[i])) i++;
    while (i < n && !/\s/.test(this.#chars[i])) i++;
    return i;
  }

  #browse(step: -1 | 1): void {
    if (this.hidden || this.#history.length === 0) return;
    let index = this.#browsing === -1 ? this.#history.length : this.#browsing;
    index += step;
    if (index < 0) return;
    if (this.#browsing === -1) this.#draft = this.#chars;
    if (index >= this.#history.length) {
      this.#browsing = -1;
      this.#chars = this.#draft;
    } else {
      this.#browsing = index;
      this.#chars = [...this.#history[index]];
    }
    this.#cursor = this.#chars.length;
  }

  #submit(): string {
    const line = this.#chars.join("");
    if (!this.hidden && line.trim() !== "" && this.#history.at(-1) !== line) {
      this.#history.push(line);
      if (this.#history.length > HISTORY_LINES) this.#history.shift();
    }
    this.#chars = [];
    this.#cursor = 0;
    this.#browsing = -1;
    this.#draft = [];
    return line;
  }

  /**
   * The input line as drawn in `width` columns after `prompt`: scrolled
   * sideways so the cursor stays visible (the line never wraps).
   */
  view(prompt: string, width: number): EditorView {
    const shownPrompt = visible(prompt);
    const promptWidth = columns(shownPrompt);
    if (this.hidden) return { text: shownPrompt, cursor: promptWidth };
    const room = Math.max(1, width - promptWidth - 1);
    const cells = this.#chars.map((c) => visible(c));
    let start = 0;
    let before = columns(cells.slice(0, this.#cursor).join(""));
    while (before > room && start < this.#cursor) {
      before -= columns(cells[start]);
      start++;
    }
    let text = "";
    let used = 0;
    for (let i = start; i < cells.length; i++) {
      const w = columns(cells[i]);
      if (used + w > room) break;
      text += cells[i];
      used += w;
    }
    return { text: shownPrompt + text, cursor: promptWidth + before };
  }
}
