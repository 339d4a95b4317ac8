/**
 * CLIP tokenizer identical to open_clip 2.24 `SimpleTokenizer` (clean='lower'): ftfy + HTML cleaning,
 * lowercase, the CLIP word regex, byte-level BPE, start/end tokens, truncation and zero padding.
 */
import { ClipError } from '../errors.js';
import { bpeSymbols, bytesToUnicode } from './bpe.js';
import { cleanLower } from './clean.js';
import { REGEX_SPACE } from './charclass.js';
import { loadVocabulary, type Vocabulary, type VocabularySource } from './vocabulary.js';

export { cleanLower } from './clean.js';
export { fixText } from './ftfy.js';
export { pyHtmlUnescape } from './html.js';
export { loadVocabulary, vocabularyFromBpeText, vocabularyFromHf } from './vocabulary.js';
export type { Vocabulary, VocabularySource } from './vocabulary.js';

export const DEFAULT_CONTEXT_LENGTH = 77;
const MAX_CONTEXT_LENGTH = 1 << 20;

const START_TOKEN = '<start_of_text>';
const END_TOKEN = '<end_of_text>';

/**
 * open_clip's pattern, compiled with the `regex` module and IGNORECASE. The text is lowercase already,
 * so case-insensitivity only adds 'ſ' (U+017F), which folds to 's'. It is spelled out rather than
 * using the `i` flag, because JavaScript's `/iu` would also let U+0345 match \p{L}, which `regex` does not.
 */
const WORD_RE = new RegExp(
  `<[sſ]tart_of_text>|<end_of_text>|'[sſ]|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${REGEX_SPACE}\\p{L}\\p{N}]+`,
  'gu',
);
/** The same pattern for cleaned ASCII text (lowercase, single spaces). */
const ASCII_WORD_RE = /<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^ a-z0-9]+/g;
const ASCII = /^[\x20-\x7e]*$/;

const BYTE_CHARS = bytesToUnicode();
const UTF8 = new TextEncoder();

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'string');
}

export class ClipTokenizer {
  readonly startId: number;
  readonly endId: number;
  readonly vocabSize: number;
  private readonly vocab: Vocabulary;
  /** Byte-encoded word -> its BPE ids. */
  private readonly cache = new Map<string, number[]>();

  /** Load from a model directory, a vocabulary file, `{ vocabJson, mergesTxt }` or `{ bpeGz }`. */
  static async load(source: VocabularySource): Promise<ClipTokenizer> {
    return new ClipTokenizer(await loadVocabulary(source));
  }

  constructor(vocab: Vocabulary) {
    this.vocab = vocab;
    this.startId = vocab.startId;
    this.endId = vocab.endId;
    this.vocabSize = vocab.size;
    this.cache.set(START_TOKEN, [vocab.startId]);
    this.cache.set(END_TOKEN, [vocab.endId]);
  }

  /** BPE ids of `text`, without the start and end tokens. */
  encode(text: string): number[] {
    if (typeof text !== 'string') {
      throw new ClipError('E_INVALID_ARGUMENT', `text to tokenize must be a string, got ${typeof text}`);
    }
    const ids: number[] = [];
    this.encodeInto(text, ids);
    return ids;
  }

  /** `[texts.length, contextLength]` ids, row-major: start, BPE ids, end, then 0 padding. */
  tokenize(texts: string | string[], contextLength = DEFAULT_CONTEXT_LENGTH): Int32Array {
    const list = this.checkTexts(texts);
    this.checkContextLength(contextLength);
    const out = new Int32Array(list.length * contextLength);
    const ids: number[] = [];
    list.forEach((text, row) => {
      ids.length = 0;
      ids.push(this.startId);
      this.encodeInto(text, ids);
      ids.push(this.endId);
      const n = Math.min(ids.length, contextLength);
      const base = row * contextLength;
      for (let i = 0; i < n; i++) out[base + i] = ids[i];
      // Too long: cut, and make the last kept id the end token.
      if (ids.length > contextLength) out[base + contextLength - 1] = this.endId;
    });
    return out;
  }

  /** Like tokenize(), as one plain array per text. */
  tokenizeRows(texts: string | string[], contextLength = DEFAULT_CONTEXT_LENGTH): number[][] {
    const flat = this.tokenize(texts, contextLength);
    const rows: number[][] = [];
    for (let i = 0; i < flat.length; i += contextLength) rows.push(Array.from(flat.subarray(i, i + contextLength)));
    return rows;
  }

  private checkTexts(texts: unknown): string[] {
    if (typeof texts === 'string') return [texts];
    if (isStringArray(texts)) return texts;
    throw new ClipError('E_INVALID_ARGUMENT', 'texts must be a string or an array of strings');
  }

  private checkContextLength(n: unknown): void {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CONTEXT_LENGTH) {
      throw new ClipError('E_INVALID_ARGUMENT', `contextLength must be an integer in 1..${MAX_CONTEXT_LENGTH}, got ${String(n)}`);
    }
  }

  private encodeInto(text: string, ids: number[]): void {
    const clean = cleanLower(text);
    const ascii = ASCII.test(clean);
    const re = ascii ? ASCII_WORD_RE : WORD_RE;
    re.lastIndex = 0;
    for (let m = re.exec(clean); m !== null; m = re.exec(clean)) {
      const word = ascii ? m[0] : this.byteEncode(m[0]);
      let wordIds = this.cache.get(word);
      if (wordIds === undefined) {
        wordIds = this.bpeIds(word);
        this.cache.set(word, wordIds);
      }
      for (const id of wordIds) ids.push(id);
    }
  }

  /** UTF-8 bytes of a word, each written as its byte character. */
  private byteEncode(word: string): string {
    let out = '';
    for (const b of UTF8.encode(word)) out += BYTE_CHARS[b];
    return out;
  }

  private bpeIds(word: string): number[] {
    return bpeSymbols(word, this.vocab.ranks).map((symbol) => {
      const id = this.vocab.encoder.get(symbol);
      if (id === undefined) {
        throw new ClipError('E_VOCAB', `the vocabulary has no id for BPE symbol ${JSON.stringify(symbol)}`, {
          subject: this.vocab.source,
        });
      }
      return id;
    });
  }
}
