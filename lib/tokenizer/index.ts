/**
 * CLIP tokenizer identical to open_clip 2.24 `SimpleTokenizer` (clean='lower'): ftfy + HTML cleaning,
 * lowercase, the CLIP word regex, byte-level BPE, start/end tokens, truncation and zero padding.
 */
import { ClipError } from '../errors.js';
import { bpeSteps, bpeSymbols, bytesToUnicode } from './bpe.js';
import { cleanLower, isPlainAscii } from './clean.js';
import { splitPlainAsciiWords, splitWords } from './words.js';
import { loadVocabulary, type Vocabulary, type VocabularySource } from './vocabulary.js';
import { invalid } from '../validate.js';

export { cleanLower } from './clean.js';
export { fixText } from './ftfy.js';
export { pyHtmlUnescape } from './html.js';
export { loadVocabulary, vocabularyFromBpeText, vocabularyFromHf } from './vocabulary.js';
export type { Vocabulary, VocabularySource } from './vocabulary.js';

export const DEFAULT_CONTEXT_LENGTH = 77;
const MAX_CONTEXT_LENGTH = 1 << 20;

const START_TOKEN = '<start_of_text>';
const END_TOKEN = '<end_of_text>';

const PRINTABLE_ASCII = /^[\x21-\x7e]*$/;
const BYTE_CHARS = bytesToUnicode();
const UTF8 = new TextEncoder();

/** Unique words the BPE cache keeps before it starts over (Python's cache is unbounded). */
const MAX_CACHED_WORDS = 200_000;
/** tokenizeAsync runs the BPE of longer words in steps, yielding between them. */
const LONG_WORD = 1024;
/** Above this many words, the scratch list is dropped after use rather than kept for reuse. */
const MAX_KEPT_WORDS = 4096;

function isStringArray(value: unknown): value is string[] {
  if (!Array.isArray(value)) return false;
  for (let i = 0; i < value.length; i++) if (typeof value[i] !== 'string') return false; // holes included
  return true;
}

/** Fills one row: start id, BPE ids while they fit, then the end id (forced into the last slot when cut). */
class RowWriter {
  private n = 1;
  private truncated = false;

  constructor(
    private readonly out: Int32Array,
    private readonly base: number,
    private readonly contextLength: number,
    startId: number,
  ) {
    out[base] = startId;
  }

  /** Appends ids; false once the row is full (later words cannot change it). */
  add(ids: readonly number[]): boolean {
    for (let i = 0; i < ids.length; i++) {
      if (this.n === this.contextLength) {
        this.truncated = true;
        return false;
      }
      this.out[this.base + this.n++] = ids[i];
    }
    return true;
  }

  finish(endId: number): void {
    // Too long for the row: open_clip cuts it and makes the last kept id the end token.
    if (this.truncated || this.n === this.contextLength) this.out[this.base + this.contextLength - 1] = endId;
    else this.out[this.base + this.n] = endId;
  }
}

export class ClipTokenizer {
  readonly startId: number;
  readonly endId: number;
  readonly vocabSize: number;
  private readonly vocab: Vocabulary;
  /** Byte-encoded word -> its BPE ids. */
  private readonly cache = new Map<string, number[]>();
  /** Scratch list of the current text's words. */
  private readonly words: string[] = [];

  /** Load from a model directory, a vocabulary file, `{ vocabJson, mergesTxt }` or `{ bpeGz }`. */
  static async load(source: VocabularySource): Promise<ClipTokenizer> {
    return new ClipTokenizer(await loadVocabulary(source));
  }

  constructor(vocab: Vocabulary) {
    this.vocab = vocab;
    this.startId = vocab.startId;
    this.endId = vocab.endId;
    this.vocabSize = vocab.size;
    this.resetCache();
  }

  /** BPE ids of `text`, without the start and end tokens. */
  encode(text: string): number[] {
    if (typeof text !== 'string') {
      throw invalid('a string', 'text', text);
    }
    const ids: number[] = [];
    const count = this.splitText(text);
    for (let w = 0; w < count; w++) for (const id of this.wordIds(this.words[w])) ids.push(id);
    this.releaseWords(count);
    return ids;
  }

  /** `[texts.length, contextLength]` ids, row-major: start, BPE ids, end, then 0 padding. */
  tokenize(texts: string | string[], contextLength = DEFAULT_CONTEXT_LENGTH): Int32Array {
    const list = this.checkTexts(texts);
    this.checkContextLength(contextLength);
    const out = new Int32Array(list.length * contextLength);
    for (let row = 0; row < list.length; row++) {
      const count = this.splitText(list[row]);
      const writer = new RowWriter(out, row * contextLength, contextLength, this.startId);
      for (let w = 0; w < count && writer.add(this.wordIds(this.words[w])); w++);
      writer.finish(this.endId);
      this.releaseWords(count);
    }
    return out;
  }

  /**
   * tokenize() in slices: texts one at a time, the BPE of long words in steps, yielding to the event loop
   * (setImmediate) after `sliceMs` of work so a server stays responsive; an aborted `signal` stops it with
   * signal.reason. Words past a full row are not tokenized at all.
   */
  async tokenizeAsync(texts: string | string[], contextLength = DEFAULT_CONTEXT_LENGTH, options: { signal?: AbortSignal; sliceMs?: number } = {}): Promise<Int32Array> {
    const list = this.checkTexts(texts);
    this.checkContextLength(contextLength);
    const sliceMs = options.sliceMs ?? 10;
    const out = new Int32Array(list.length * contextLength);
    let sliceStart = performance.now();
    const pause = async (): Promise<void> => {
      if (performance.now() - sliceStart < sliceMs) return;
      await new Promise<void>((resolve) => setImmediate(resolve));
      options.signal?.throwIfAborted();
      sliceStart = performance.now();
    };
    for (let row = 0; row < list.length; row++) {
      options.signal?.throwIfAborted();
      const count = this.splitText(list[row]);
      const words = this.words.slice(0, count); // the scratch list is shared with calls made while this one waits
      this.releaseWords(count);
      await pause();
      const writer = new RowWriter(out, row * contextLength, contextLength, this.startId);
      for (const word of words) {
        const ids = word.length > LONG_WORD && !this.cache.has(word) ? await this.longWordIds(word, pause) : this.wordIds(word);
        if (!writer.add(ids)) break;
        await pause();
      }
      writer.finish(this.endId);
    }
    options.signal?.throwIfAborted();
    return out;
  }

  /** wordIds() of a long word, its merges and id lookups in steps with `pause` between them. */
  private async longWordIds(word: string, pause: () => Promise<void>): Promise<number[]> {
    const steps = bpeSteps(word, this.vocab.ranks, 1024);
    let step = steps.next();
    for (; !step.done; step = steps.next()) await pause();
    const symbols = step.value;
    const ids: number[] = [];
    for (let i = 0; i < symbols.length; i += 1024) {
      for (const id of this.idsOf(symbols.slice(i, i + 1024))) ids.push(id);
      await pause();
    }
    this.remember(word, ids);
    return ids;
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
    throw invalid('a string or an array of strings', 'texts', texts);
  }

  private checkContextLength(n: unknown): void {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_CONTEXT_LENGTH) {
      throw invalid(`an integer between 1 and ${MAX_CONTEXT_LENGTH}`, 'contextLength', n);
    }
  }

  /** Split a text into its byte-encoded words, left in this.words[0 .. count). */
  private splitText(text: string): number {
    const words = this.words;
    if (isPlainAscii(text)) return splitPlainAsciiWords(text, words);
    const count = splitWords(cleanLower(text), words);
    // Printable ASCII bytes are their own byte characters; other words need encoding.
    for (let w = 0; w < count; w++) if (!PRINTABLE_ASCII.test(words[w])) words[w] = this.byteEncode(words[w]);
    return count;
  }

  /** Let go of a long text's words instead of holding them until the next call. */
  private releaseWords(count: number): void {
    if (count > MAX_KEPT_WORDS) this.words.length = 0;
  }

  /** BPE ids of one byte-encoded word, cached. */
  private wordIds(word: string): number[] {
    let ids = this.cache.get(word);
    if (ids === undefined) {
      ids = this.idsOf(bpeSymbols(word, this.vocab.ranks));
      this.remember(word, ids);
    }
    return ids;
  }

  private remember(word: string, ids: number[]): void {
    if (this.cache.size >= MAX_CACHED_WORDS) this.resetCache();
    this.cache.set(word, ids);
  }

  private resetCache(): void {
    this.cache.clear();
    this.cache.set(START_TOKEN, [this.startId]);
    this.cache.set(END_TOKEN, [this.endId]);
  }

  /** UTF-8 bytes of a word, each written as its byte character. */
  private byteEncode(word: string): string {
    let out = '';
    for (const b of UTF8.encode(word)) out += BYTE_CHARS[b];
    return out;
  }

  private idsOf(symbols: string[]): number[] {
    return symbols.map((symbol) => {
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
