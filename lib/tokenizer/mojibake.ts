/**
 * ftfy 6.3 `fix_encoding`: detect text that was UTF-8 decoded in a single-byte encoding (mojibake) and
 * re-decode it. Same steps and order as ftfy: try each single-byte encoding (with the byte-A0 and lossy
 * sequence repairs), then fix embedded UTF-8 fragments, then Latin-1 read as Windows-1252, then C1 controls.
 */
import { isBad } from './badness.js';
import { CHARMAPS, SLOPPY_1252, decodeUtf8, decodeUtf8Variants, latin1AsWindows1252 } from './codecs.js';
import { UTF8_CLUES } from './mojibake-data.js';
import { classBody } from './charclass.js';

// Byte patterns (on byte strings) of UTF-8 whose A0 byte became a space.
const ALTERED_UTF8 =
  '[\\xc2\\xc3\\xc5\\xce\\xd0\\xd9] ' +
  '|[\\xe2\\xe3] [\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf]' +
  '|[\\xe0-\\xe3][\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf] ' +
  '|\\xf0 [\\x80-\\xbf][\\x80-\\xbf]' +
  '|\\xf0[\\x80-\\xbf] [\\x80-\\xbf]' +
  '|\\xf0[\\x80-\\xbf][\\x80-\\xbf] ';
const ALTERED_UTF8_TEST = new RegExp(ALTERED_UTF8);
const ALTERED_UTF8_ALL = new RegExp(ALTERED_UTF8, 'g');
// "Ã " as a word is almost always "à ", except in Portuguese contractions.
const A_GRAVE_WORD = /\xc3 (?! |quele|quela|quilo|s )/g;

// UTF-8 sequences where some bytes were lost to U+FFFD (byte 1A in sloppy codecs) or '?'.
const LOSSY_UTF8 = new RegExp(
  [
    '[\\xc2-\\xdf][\\x1a]',
    '[\\xc2-\\xc3][?]',
    '\\xed[\\xa0-\\xaf][\\x1a?]\\xed[\\xb0-\\xbf][\\x1a?\\x80-\\xbf]',
    '\\xed[\\xa0-\\xaf][\\x1a?\\x80-\\xbf]\\xed[\\xb0-\\xbf][\\x1a?]',
    '[\\xe0-\\xef][\\x1a?][\\x1a\\x80-\\xbf]',
    '[\\xe0-\\xef][\\x1a\\x80-\\xbf][\\x1a?]',
    '[\\xf0-\\xf4][\\x1a?][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf]',
    '[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a?][\\x1a\\x80-\\xbf]',
    '[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf][\\x1a?]',
    '\\x1a',
  ].join('|'),
  'g',
);

const C1_TEST = /[\x80-\x9f]/;
const C1_ALL = /[\x80-\x9f]/g;
const NON_ASCII = /[^\x00-\x7f]/;

// Runs of characters that look like UTF-8 read as a single-byte encoding.
const CONT = `[${classBody(UTF8_CLUES.utf8_continuation)}]`;
const UTF8_DETECTOR_SRC =
  `(?<![${classBody(UTF8_CLUES.utf8_continuation_strict)}])` +
  `(?:[${classBody(UTF8_CLUES.utf8_first_of_2)}]${CONT}` +
  `|[${classBody(UTF8_CLUES.utf8_first_of_3)}]${CONT}{2}` +
  `|[${classBody(UTF8_CLUES.utf8_first_of_4)}]${CONT}{3})+`;
const UTF8_DETECTOR_TEST = new RegExp(UTF8_DETECTOR_SRC, 'u');
const UTF8_DETECTOR_ALL = new RegExp(UTF8_DETECTOR_SRC, 'gu');

/** Put back A0 bytes that became spaces inside would-be UTF-8 sequences. */
function restoreByteA0(bytes: string): string {
  return bytes.replace(A_GRAVE_WORD, '\xc3\xa0 ').replace(ALTERED_UTF8_ALL, (m) => m.replace(/ /g, '\xa0'));
}

/** Replace UTF-8 sequences that lost bytes with the encoding of U+FFFD. */
function replaceLossySequences(bytes: string): string {
  return bytes.replace(LOSSY_UTF8, '\xef\xbf\xbd');
}

/** Fix mojibake fragments embedded in otherwise fine text. */
function decodeInconsistentUtf8(text: string): string {
  return text.replace(UTF8_DETECTOR_ALL, (sub) => (sub.length < text.length && isBad(sub) ? fixEncoding(sub) : sub));
}

/** Read leftover C1 controls as the Windows-1252 characters they stand for (as browsers do). */
export function fixC1Controls(text: string): string {
  if (!C1_TEST.test(text)) return text;
  return text.replace(C1_ALL, (c) => SLOPPY_1252.high[c.charCodeAt(0) - 0x80]);
}

function fixEncodingOneStep(text: string): string {
  if (text.length === 0 || !NON_ASCII.test(text) || !isBad(text)) return text;
  let latin1Possible = false;
  for (const cm of CHARMAPS) {
    if (!cm.canEncode(text)) continue;
    if (cm.name === 'latin-1') latin1Possible = true;
    let bytes = cm.encode(text);
    if (cm.name !== 'macroman' && ALTERED_UTF8_TEST.test(bytes)) bytes = restoreByteA0(bytes);
    if (cm.sloppy) bytes = replaceLossySequences(bytes);
    const fixed = bytes.includes('\xed') || bytes.includes('\xc0') ? decodeUtf8Variants(bytes) : decodeUtf8(bytes);
    if (fixed !== null) return fixed;
  }
  if (UTF8_DETECTOR_TEST.test(text)) {
    const fixed = decodeInconsistentUtf8(text);
    if (fixed !== text) return fixed;
  }
  // ftfy checks for "windows-1252" among the possible encodings, which only lists "sloppy-windows-1252",
  // so Latin-1 text always gets the strict Windows-1252 reading here.
  if (latin1Possible) {
    const fixed = latin1AsWindows1252(text);
    if (fixed !== null && fixed !== text) return fixed;
  }
  if (C1_TEST.test(text)) return fixC1Controls(text);
  return text;
}

/** ftfy `fix_encoding`: repeat single repair steps until the text stops changing. */
export function fixEncoding(text: string): string {
  for (;;) {
    const next = fixEncodingOneStep(text);
    if (next === text) return text;
    text = next;
  }
}
