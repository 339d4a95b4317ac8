/** Splitting cleaned text into the words BPE runs on (open_clip's token regex). */
import { REGEX_SPACE } from './charclass.js';

/**
 * open_clip's pattern, compiled with the `regex` module and IGNORECASE. The text is lowercase already,
 * so case-insensitivity changes only two things, spelled out here instead of using JavaScript's `/iu`
 * (which differs from `regex` on the second): 'ſ' (U+017F) matches 's', and U+0345 (which folds to
 * the letter ι) is matched by neither \p{L} nor the negated class, so it is dropped.
 */
const WORD_RE = new RegExp(
  `<[sſ]tart_of_text>|<end_of_text>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${REGEX_SPACE}\\p{L}\\p{N}\\u0345]+`,
  'gu',
);

/** Words of text that cleanLower() produced, written to out[0 .. count); returns count. */
export function splitWords(clean: string, out: string[]): number {
  let count = 0;
  WORD_RE.lastIndex = 0;
  for (let m = WORD_RE.exec(clean); m !== null; m = WORD_RE.exec(clean)) out[count++] = m[0];
  return count;
}

const SPECIAL_START = '<start_of_text>';
const SPECIAL_END = '<end_of_text>';

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isLetter = (c: number): boolean => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/** Does the text continue at `i` with `word` (ASCII, compared case-insensitively)? */
function startsWithLower(text: string, i: number, word: string): boolean {
  if (i + word.length > text.length) return false;
  for (let k = 0; k < word.length; k++) if (lower(text.charCodeAt(i + k)) !== word.charCodeAt(k)) return false;
  return true;
}

/**
 * The same split for raw text that isPlainAscii() accepts, without building the cleaned string:
 * whitespace only separates words, and lowercasing happens per word. Alternatives are tried in the
 * regex's order at each word start.
 */
export function splitPlainAsciiWords(text: string, out: string[]): number {
  const n = text.length;
  let count = 0;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      i++;
    } else if (isLetter(c)) {
      let j = i + 1;
      while (j < n && isLetter(text.charCodeAt(j))) j++;
      out[count++] = text.slice(i, j).toLowerCase();
      i = j;
    } else if (isDigit(c)) {
      out[count++] = text[i];
      i++;
    } else {
      if (c === 0x3c /* < */) {
        if (startsWithLower(text, i, SPECIAL_START)) {
          out[count++] = SPECIAL_START;
          i += SPECIAL_START.length;
          continue;
        }
        if (startsWithLower(text, i, SPECIAL_END)) {
          out[count++] = SPECIAL_END;
          i += SPECIAL_END.length;
          continue;
        }
      } else if (c === 0x27 /* ' */ && i + 1 < n) {
        const a = lower(text.charCodeAt(i + 1));
        const b = i + 2 < n ? lower(text.charCodeAt(i + 2)) : 0;
        let len = 0;
        if (a === 0x73 || a === 0x74 || a === 0x6d || a === 0x64) len = 2; // 's 't 'm 'd
        else if ((a === 0x72 || a === 0x76) && b === 0x65) len = 3; // 're 've
        else if (a === 0x6c && b === 0x6c) len = 3; // 'll
        if (len > 0) {
          out[count++] = text.slice(i, i + len).toLowerCase();
          i += len;
          continue;
        }
      }
      // A run of punctuation: everything that is not whitespace, letter or digit.
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (isSpace(d) || isLetter(d) || isDigit(d)) break;
        j++;
      }
      out[count++] = text.slice(i, j);
      i = j;
    }
  }
  return count;
}
