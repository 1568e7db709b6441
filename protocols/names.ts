/**
 * Names that reach other people (SPEC.md 6.3): user names, host names,
 * channel names, statuses, infos. One check, used by every protocol.
 *
 * A safe name is well-formed Unicode (it round-trips through UTF-8) with none
 * of these code points:
 *
 * ```
 * U+0000-001F  C0 controls (NUL, TAB, LF, CR, ESC, ...)
 * U+007F       DEL
 * U+0080-009F  C1 controls
 * U+202A-202E  bidi embeddings and overrides (LRE, RLE, PDF, LRO, RLO)
 * U+2066-2069  bidi isolates (LRI, RLI, FSI, PDI)
 * U+FFFD       the replacement character: what a decoder makes of bytes that
 *              were not UTF-8, so a name holding it did not arrive as valid UTF-8
 * ```
 *
 * The empty string is safe as far as characters go; whether a name may be
 * empty (a status may, a user name may not) is the protocol's rule.
 *
 * @module
 */

// deno-lint-ignore no-control-regex -- finding control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\ufffd]/u;
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Options of {@link isSafeName} and {@link isSafeNameBytes}. */
export interface SafeNameOptions {
  /** Longest allowed name in UTF-8 bytes (no limit when absent). */
  maxBytes?: number;
}

/**
 * Byte length of a text in UTF-8.
 *
 * @example
 * ```ts
 * import { utf8Length } from "./names.ts";
 * console.assert(utf8Length("é") === 2);
 * ```
 */
export function utf8Length(text: string): number {
  // Short names (the common case) are counted without allocating.
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * True when `name` may be shown to other people: well-formed, no control or
 * bidi characters, no U+FFFD, and at most `maxBytes` UTF-8 bytes if given.
 *
 * @example
 * ```ts
 * import { isSafeName } from "./names.ts";
 * console.assert(isSafeName("Zoë 😀"));
 * console.assert(!isSafeName("evil\u202ename"));
 * console.assert(!isSafeName("bell\x07"));
 * console.assert(!isSafeName("\ud800")); // a lone surrogate is not UTF-8
 * console.assert(!isSafeName("x".repeat(33), { maxBytes: 32 }));
 * ```
 */
export function isSafeName(name: string, options: SafeNameOptions = {}): boolean {
  if (!name.isWellFormed() || UNSAFE.test(name)) return false;
  return options.maxBytes === undefined || utf8Length(name) <= options.maxBytes;
}

/**
 * True when `bytes` are valid UTF-8 and decode to a {@link isSafeName safe name}.
 * For protocols whose names arrive as raw bytes in fixed fields.
 *
 * @example
 * ```ts
 * import { isSafeNameBytes } from "./names.ts";
 * console.assert(isSafeNameBytes(new TextEncoder().encode("alice")));
 * console.assert(!isSafeNameBytes(new Uint8Array([0x61, 0xff]))); // not UTF-8
 * ```
 */
export function isSafeNameBytes(bytes: Uint8Array, options: SafeNameOptions = {}): boolean {
  if (options.maxBytes !== undefined && bytes.length > options.maxBytes) return false;
  let text: string;
  try {
    text = strictDecoder.decode(bytes);
  } catch {
    return false;
  }
  return isSafeName(text);
}
