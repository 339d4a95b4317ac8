/**
 * ftfy 6.3 `fix_text` with its default configuration: per line, unescape HTML (only while no line so far
 * contained '<'), repair mojibake, C1 controls, Latin ligatures, character width, curly quotes, line
 * breaks, surrogates, terminal escapes and control characters, then NFC; repeat until nothing changes.
 */
import { html5Entities, pyHtmlUnescape } from './html.js';
import { fixC1Controls, fixEncoding } from './mojibake.js';

const MAX_DECODE_LENGTH = 1_000_000;

let ftfyEntities: Map<string, string> | undefined;

/**
 * ftfy's entity table: `&name;` for every HTML5 name that ends in ';', plus all-caps forms (`&EACUTE;`)
 * of lowercase names whose caps form is not itself an entity.
 */
function entities(): Map<string, string> {
  if (ftfyEntities) return ftfyEntities;
  const table = new Map<string, string>();
  for (const [name, chars] of html5Entities()) {
    if (!name.endsWith(';')) continue;
    table.set('&' + name, chars);
    if (name === name.toLowerCase()) {
      const upper = '&' + name.toUpperCase();
      if (pyHtmlUnescape(upper) === upper) table.set(upper, chars.toUpperCase());
    }
  }
  ftfyEntities = table;
  return table;
}

const ENTITY_RE = /&#?[0-9A-Za-z]{1,24};/g;

/** ftfy `unescape_html`: only unambiguous references (with ';'), plus all-caps names. */
export function unescapeHtml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(ENTITY_RE, (ref) => {
    const known = entities().get(ref);
    if (known !== undefined) return known;
    if (ref.startsWith('&#')) {
      const decoded = pyHtmlUnescape(ref);
      return decoded.includes(';') ? ref : decoded;
    }
    return ref;
  });
}

const LIGATURES: Record<string, string> = {
  '\u0132': 'IJ',
  '\u0133': 'ij',
  '\u0149': '\u02bcn',
  '\u01f1': 'DZ',
  '\u01f2': 'Dz',
  '\u01f3': 'dz',
  '\u01c4': 'D\u017d',
  '\u01c5': 'D\u017e',
  '\u01c6': 'd\u017e',
  '\u01c7': 'LJ',
  '\u01c8': 'Lj',
  '\u01c9': 'lj',
  '\u01ca': 'NJ',
  '\u01cb': 'Nj',
  '\u01cc': 'nj',
  '\ufb00': 'ff',
  '\ufb01': 'fi',
  '\ufb02': 'fl',
  '\ufb03': 'ffi',
  '\ufb04': 'ffl',
  '\ufb05': '\u017ft',
  '\ufb06': 'st',
};
const LIGATURE_RE = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;

/** Halfwidth/fullwidth forms (U+FF01..U+FFEF) -> their NFKC form, and U+3000 -> space. */
const WIDTH_MAP = new Map<string, string>([['\u3000', ' ']]);
for (let cp = 0xff01; cp < 0xfff0; cp++) {
  const ch = String.fromCharCode(cp);
  const alt = ch.normalize('NFKC');
  if (alt !== ch) WIDTH_MAP.set(ch, alt);
}
const WIDTH_RE = /[\u3000\uff01-\uffef]/g;

const SINGLE_QUOTE_RE = /[\u02bc\u2018-\u201b]/g;
const DOUBLE_QUOTE_RE = /[\u201c-\u201f]/g;
const LINE_BREAK_RE = /\r\n?|[\u2028\u2029\x85]/g;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// Python's `\d` is any Unicode decimal digit.
const ANSI_RE = /\x1b\[(?:\p{Nd}|;)*[a-zA-Z]/gu;
const CONTROL_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

function fixSegment(text: string, unescape: boolean): string {
  for (;;) {
    const orig = text;
    if (unescape) text = unescapeHtml(text);
    text = fixEncoding(text);
    text = fixC1Controls(text);
    text = text.replace(LIGATURE_RE, (c) => LIGATURES[c] ?? c);
    text = text.replace(WIDTH_RE, (c) => WIDTH_MAP.get(c) ?? c);
    text = text.replace(DOUBLE_QUOTE_RE, '"').replace(SINGLE_QUOTE_RE, "'");
    text = text.replace(LINE_BREAK_RE, '\n');
    text = text.replace(LONE_SURROGATE_RE, '\ufffd');
    text = text.replace(ANSI_RE, '');
    text = text.replace(CONTROL_RE, '');
    text = text.normalize('NFC');
    if (text === orig) return text;
  }
}

/** Index `count` code points after `pos` (or the end of the text). */
function advanceCodePoints(text: string, pos: number, count: number): number {
  let i = pos;
  for (let n = 0; n < count && i < text.length; n++) {
    const c = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    i += c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff ? 2 : 1;
  }
  return i;
}

/** ftfy `fix_text(text)` with default settings. */
export function fixText(text: string): string {
  let unescape = true;
  let out = '';
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos) + 1;
    if (end === 0) end = text.length;
    if (end - pos > MAX_DECODE_LENGTH) end = Math.min(end, advanceCodePoints(text, pos, MAX_DECODE_LENGTH));
    const segment = text.slice(pos, end);
    if (unescape && segment.includes('<')) unescape = false;
    out += fixSegment(segment, unescape);
    pos = end;
  }
  return out;
}
