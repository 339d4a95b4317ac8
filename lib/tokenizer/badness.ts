/**
 * ftfy 6.3 `badness.is_bad`: does the text contain character sequences that are far more likely to be
 * mojibake than intended? The rules follow ftfy's BADNESS_RE one for one.
 */
import { MOJIBAKE } from './mojibake-data.js';
import { PY_SPACE, PY_WORD, classBody, literal } from './charclass.js';

type Category = keyof typeof MOJIBAKE;

/** A class made of mojibake categories plus extra literal characters. */
function cls(categories: Category[], extra = ''): string {
  return '[' + categories.map((c) => classBody(MOJIBAKE[c])).join('') + literal(extra) + ']';
}

const lit = literal;

const RULES: string[] = [
  cls(['c1']),
  cls(['bad', 'lower_accented', 'upper_accented', 'box', 'start_punctuation', 'end_punctuation', 'currency', 'numeric', 'law']) +
    cls(['bad']),
  '[a-zA-Z]' + cls(['lower_common', 'upper_common']) + cls(['bad']),
  cls(['bad']) +
    cls(['lower_accented', 'upper_accented', 'box', 'start_punctuation', 'end_punctuation', 'currency', 'numeric', 'law']),
  cls(['lower_accented', 'lower_common', 'box', 'end_punctuation', 'currency', 'numeric']) + cls(['upper_accented']),
  cls(['box', 'end_punctuation', 'currency', 'numeric']) + cls(['lower_accented']),
  cls(['lower_accented', 'box', 'end_punctuation']) + cls(['currency']),
  `[${PY_SPACE}]` + cls(['upper_accented']) + cls(['currency']),
  cls(['upper_accented', 'box']) + cls(['numeric', 'law']),
  cls(['lower_accented', 'upper_accented', 'box', 'currency', 'end_punctuation']) + cls(['start_punctuation']) + cls(['numeric']),
  cls(['lower_accented', 'upper_accented', 'currency', 'numeric', 'box', 'law']) + cls(['end_punctuation']) + cls(['start_punctuation']),
  cls(['currency', 'numeric', 'box']) + cls(['start_punctuation']),
  '[a-z]' + cls(['upper_accented']) + cls(['start_punctuation', 'currency']),
  cls(['box']) + cls(['kaomoji']),
  cls(['lower_accented', 'upper_accented', 'currency', 'numeric', 'start_punctuation', 'end_punctuation', 'law']) + cls(['box']),
  cls(['box']) + cls(['end_punctuation']),
  cls(['lower_accented', 'upper_accented']) + cls(['start_punctuation', 'end_punctuation']) + `[${PY_WORD}]`,
  // the ligature œ when not followed by an unaccented Latin letter
  `[${lit('Œœ')}][^A-Za-z]`,
  // degree signs after capital letters
  cls(['upper_accented']) + lit('°'),
  // common Windows-1252 2-character mojibake
  `[${lit('ÂÃÎÐ')}]` + cls(['start_punctuation', 'end_punctuation'], '€œŠš¢£Ÿž\xa0\xad®©°·»–—´'),
  lit('×') + `[${lit('²³')}]`,
  // Windows-1252 mojibake of Arabic: four characters
  (`[${lit('ØÙ')}]` + cls(['common', 'currency', 'bad', 'numeric', 'start_punctuation'], 'ŸŠ®°µ»')).repeat(2),
  // Windows-1252 mojibake starting 3-byte sequences of South Asian scripts
  lit('à') + `[${lit('²µ¹¼½¾')}]`,
  // MacRoman mojibake
  lit('√') + `[${lit('±∂†≠®™´≤≥¥µø')}]`,
  lit('≈') + `[${lit('°¢')}]`,
  lit('‚Ä') + `[${lit('ìîïòôúùû†°¢π')}]`,
  lit('‚') + `[${lit('âó')}][${lit('àä°ê')}]`,
  // Windows-1251 mojibake
  lit('вЂ'),
  `[${lit('ВГРС')}]` + cls(['c1', 'bad', 'start_punctuation', 'end_punctuation', 'currency'], '°µ') + `[${lit('ВГРС')}]`,
  lit('ГўВЂВ') + '[^\\n][A-Za-z ]',
  // Windows-1252 encodings of 'à', 'á' and U+A0 itself
  lit('Ã') + `[${lit('\xa0¡')}]`,
  `[a-z][${PY_SPACE}]?[${lit('ÃÂ')}] `,
  `^[${lit('ÃÂ')}] `,
  // Â standing before a character as an encoding of exactly that character
  '[a-z.,?!' + classBody(MOJIBAKE.end_punctuation) + ']' + lit('Â') + cls(['start_punctuation', 'end_punctuation'], ' '),
  // Windows-1253 mojibake
  lit('β€') + `[${lit('™\xa0Ά\xad®°')}]`,
  `[${lit('ΒΓΞΟ')}]` + cls(['c1', 'bad', 'start_punctuation', 'end_punctuation', 'currency'], '°') + `[${lit('ΒΓΞΟ')}]`,
  // Windows-1257 mojibake
  lit('ā€'),
];

const BADNESS_RE = new RegExp(RULES.join('|'), 'u');

/** True when the text looks like it contains mojibake. */
export function isBad(text: string): boolean {
  return BADNESS_RE.test(text);
}
