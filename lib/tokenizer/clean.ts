/**
 * open_clip's text cleaning for clean='lower': ftfy.fix_text, html.unescape twice, strip, collapse
 * whitespace the way Python's `' '.join(text.split())` does, lowercase.
 */
import { fixText } from './ftfy.js';
import { pyHtmlUnescape } from './html.js';
import { PY_SPACE } from './charclass.js';

const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`);

/**
 * Text that ftfy and html.unescape leave exactly as it is: printable ASCII without '&', plus tab, LF
 * and CR (ftfy only turns CR into LF, which whitespace collapsing erases anyway).
 */
const PLAIN_ASCII = /^[\t\n\r\x20-\x25\x27-\x7e]*$/;
const ASCII_SPACE_RUN = /[\t\n\r ]+/;

/** True for text that cleaning leaves alone apart from whitespace and case. */
export const isPlainAscii = (text: string): boolean => PLAIN_ASCII.test(text);

/** Python `' '.join(text.split())`. */
export function collapseWhitespace(text: string): string {
  return text
    .split(PY_SPACE_RUN)
    .filter((part) => part.length > 0)
    .join(' ');
}

/** open_clip `_clean_lower(text)`: the string the tokenizer's regex runs on. */
export function cleanLower(text: string): string {
  if (PLAIN_ASCII.test(text)) {
    return text
      .split(ASCII_SPACE_RUN)
      .filter((part) => part.length > 0)
      .join(' ')
      .toLowerCase();
  }
  // basic_clean's strip() is subsumed by the split/join that follows.
  const fixed = pyHtmlUnescape(pyHtmlUnescape(fixText(text)));
  // JavaScript's toLowerCase matches Python's str.lower() (full mappings, final sigma) for every
  // character both Unicode versions know.
  return collapseWhitespace(fixed).toLowerCase();
}
