/**
 * The one rendering function of the terminal clients (SPEC.md 7.2): text that
 * came from the network is shown with every control character made visible,
 * and only this module adds escape sequences (colours), so nothing a peer
 * sends can move the cursor, change colours, retitle the window or hide text.
 *
 * - C0 controls (U+0000-001F) become `^X` (`^[` for ESC, `^J` for a newline),
 *   DEL becomes `^?`.
 * - C1 controls (U+0080-009F) and bidi controls (U+202A-202E, U+2066-2069)
 *   become `<U+XXXX>`.
 *
 * @module
 */

/** What a piece of a line is, for colouring. */
export type Tone = "plain" | "own" | "name" | "notice" | "error" | "time";

/** A piece of a line with its tone. */
export interface Span {
  /** The text, shown with control characters made visible. */
  text: string;
  /** How it is coloured (default `plain`). */
  tone?: Tone;
}

/** A line to show: plain strings and toned spans. */
export type Line = readonly (string | Span)[] | string;

/** How {@link renderLine} renders. */
export interface RenderOptions {
  /** Add SGR colour codes (default false). */
  color?: boolean;
  /** Prefix the line with `HH:MM ` of this time (default: no prefix). */
  time?: Date;
}

const SGR: Record<Tone, string> = {
  plain: "",
  own: "\x1b[32m",
  name: "\x1b[1;36m",
  notice: "\x1b[33m",
  error: "\x1b[1;31m",
  time: "\x1b[2m",
};
const RESET = "\x1b[0m";

// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Makes every control character of `text` visible (SPEC.md 7.2).
 *
 * @example
 * ```ts
 * import { visible } from "./render.ts";
 * console.assert(visible("\x1b]0;pwned\x07") === "^[]0;pwned^G");
 * console.assert(visible("a\u202eb\x7f") === "a<U+202E>b^?");
 * ```
 */
export function visible(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    if (code < 0x20) return `^${String.fromCharCode(code + 0x40)}`;
    if (code === 0x7f) return "^?";
    return `<U+${code.toString(16).toUpperCase().padStart(4, "0")}>`;
  });
}

/** `HH:MM` of a local time. */
export function clockTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}`;
}

/**
 * Renders one screen line: every piece through {@link visible}, coloured by
 * tone when `color` is set, with an `HH:MM ` prefix when `time` is given. The
 * result never holds a control character except the SGR codes added here.
 *
 * @example
 * ```ts
 * import { renderLine } from "./render.ts";
 * const line = renderLine([{ text: "bob", tone: "name" }, ": hi\x1b[2J"]);
 * console.assert(line === "bob: hi^[[2J");
 * ```
 */
export function renderLine(line: Line, options: RenderOptions = {}): string {
  const spans: (string | Span)[] = typeof line === "string" ? [line] : [...line];
  if (options.time) spans.unshift({ text: `${clockTime(options.time)} `, tone: "time" });
  return spans.map((span) => {
    const { text, tone = "plain" } = typeof span === "string" ? { text: span } : span;
    const shown = visible(text);
    return options.color && SGR[tone] && shown ? `${SGR[tone]}${shown}${RESET}` : shown;
  }).join("");
}

/** Shorthand for a span of a given tone. */
export const tone = {
  /** This user's own words. */
  own: (text: string): Span => ({ text, tone: "own" }),
  /** Someone's name. */
  name: (text: string): Span => ({ text, tone: "name" }),
  /** A notice (presence, joins, welcome). */
  notice: (text: string): Span => ({ text, tone: "notice" }),
  /** An error. */
  error: (text: string): Span => ({ text, tone: "error" }),
};

/**
 * How many terminal columns a string takes: 0 for combining marks, 2 for East
 * Asian wide characters and emoji, 1 otherwise (control characters never reach
 * the screen raw, so they are not counted here).
 */
export function columns(text: string): number {
  let width = 0;
  for (const c of text) width += charColumns(c);
  return width;
}

/** The columns of one code point (see {@link columns}). */
export function charColumns(c: string): number {
  const cp = c.codePointAt(0)!;
  if (/\p{Mn}|\p{Me}|\u200b|\u200d/u.test(c)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd)
  ) return 2;
  return 1;
}
