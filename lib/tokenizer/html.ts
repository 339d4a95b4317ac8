/**
 * Python's `html.unescape` (CPython Lib/html/__init__.py), reproduced exactly: HTML5 named references,
 * including the legacy names that need no `;` (`&amp`, `&lt`), the longest-prefix rule for unknown
 * names, and the HTML5 replacements for invalid numeric references.
 */
import { HTML5_PACKED } from './entities.js';

let html5: Map<string, string> | undefined;

/** The `html.entities.html5` table: name (with its `;` when it has one) -> replacement text. */
export function html5Entities(): Map<string, string> {
  if (html5) return html5;
  const table = new Map<string, string>();
  for (const entry of HTML5_PACKED.split(' ')) {
    if (!entry) continue;
    const colon = entry.indexOf(':');
    const chars = entry
      .slice(colon + 1)
      .split('.')
      .map((hex) => String.fromCodePoint(parseInt(hex, 16)));
    table.set(entry.slice(0, colon), chars.join(''));
  }
  html5 = table;
  return table;
}

/** Numeric references the HTML5 parser maps to something else (mostly the Windows-1252 C1 range). */
const INVALID_CHARREFS = new Map<number, string>([
  [0x00, '\ufffd'],
  [0x0d, '\r'],
  [0x80, '\u20ac'],
  [0x81, '\x81'],
  [0x82, '\u201a'],
  [0x83, '\u0192'],
  [0x84, '\u201e'],
  [0x85, '\u2026'],
  [0x86, '\u2020'],
  [0x87, '\u2021'],
  [0x88, '\u02c6'],
  [0x89, '\u2030'],
  [0x8a, '\u0160'],
  [0x8b, '\u2039'],
  [0x8c, '\u0152'],
  [0x8d, '\x8d'],
  [0x8e, '\u017d'],
  [0x8f, '\x8f'],
  [0x90, '\x90'],
  [0x91, '\u2018'],
  [0x92, '\u2019'],
  [0x93, '\u201c'],
  [0x94, '\u201d'],
  [0x95, '\u2022'],
  [0x96, '\u2013'],
  [0x97, '\u2014'],
  [0x98, '\u02dc'],
  [0x99, '\u2122'],
  [0x9a, '\u0161'],
  [0x9b, '\u203a'],
  [0x9c, '\u0153'],
  [0x9d, '\x9d'],
  [0x9e, '\u017e'],
  [0x9f, '\u0178'],
]);

/** Code points a numeric reference may not produce: Python drops them (returns ''). */
function isInvalidCodepoint(n: number): boolean {
  return (
    (n >= 0x1 && n <= 0x8) ||
    n === 0xb ||
    (n >= 0xe && n <= 0x1f) ||
    (n >= 0x7f && n <= 0x9f) ||
    (n >= 0xfdd0 && n <= 0xfdef) ||
    (n & 0xfffe) === 0xfffe // U+xFFFE and U+xFFFF in every plane
  );
}

// `/u` so that {1,32} counts code points, as Python does.
const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function replaceCharref(_match: string, s: string): string {
  if (s[0] === '#') {
    const hex = s[1] === 'x' || s[1] === 'X';
    const digits = s.slice(hex ? 2 : 1).replace(/;$/, '');
    const num = hex ? parseInt(digits, 16) : parseInt(digits, 10);
    const mapped = INVALID_CHARREFS.get(num);
    if (mapped !== undefined) return mapped;
    if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
    if (isInvalidCodepoint(num)) return '';
    return String.fromCodePoint(num);
  }
  const table = html5Entities();
  const whole = table.get(s);
  if (whole !== undefined) return whole;
  // The longest prefix (at least 2 characters) that is a known name wins; the rest stays as text.
  for (let x = s.length - 1; x > 1; x--) {
    const prefix = table.get(s.slice(0, x));
    if (prefix !== undefined) return prefix + s.slice(x);
  }
  return '&' + s;
}

/** Python `html.unescape(s)`. */
export function pyHtmlUnescape(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(CHARREF_RE, replaceCharref);
}
