/** Helpers for writing Python regex character classes as JavaScript `/u` regexes. */

/**
 * Escape a class body for a `/u` regex. A '-' between two characters stays a range operator, as in the
 * ftfy data tables; every other character becomes `\u{...}`.
 */
export function classBody(chars: string): string {
  let out = '';
  for (const ch of chars) out += ch === '-' ? '-' : `\\u{${(ch.codePointAt(0) as number).toString(16)}}`;
  return out;
}

/** Escape literal text (no ranges) for a `/u` regex. */
export function literal(chars: string): string {
  let out = '';
  for (const ch of chars) out += `\\u{${(ch.codePointAt(0) as number).toString(16)}}`;
  return out;
}

/** Python `str.isspace()` characters (what `str.split()`, `str.strip()` and `re`'s `\s` use). */
export const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** The `regex` module's `\s` (Unicode White_Space): Python's set without U+001C..U+001F. */
export const REGEX_SPACE = '\\t\\n\\v\\f\\r\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** Python `re`'s `\w` for str patterns: letters, numbers and '_'. */
export const PY_WORD = '\\p{L}\\p{N}_';
