/**
 * Loading the CLIP BPE vocabulary from either layout, giving identical ids:
 * - open_clip's `bpe_simple_vocab_16e6.txt.gz`: a header line, then merges; ids are the 256 byte symbols,
 *   the same with `</w>`, one per merge, then `<start_of_text>` and `<end_of_text>`;
 * - Hugging Face `vocab.json` + `merges.txt` (`<|startoftext|>` / `<|endoftext|>` are the special ids).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { ClipError } from '../errors.js';
import { FILE_LIMITS, readRegularFile } from '../fs/read-file.js';
import { END_OF_WORD, bytesToUnicode, pairKey, vocabularyByteOrder } from './bpe.js';
import { collapseWhitespace } from './clean.js';
import { invalid } from '../validate.js';

export interface Vocabulary {
  /** BPE symbol -> id. */
  readonly encoder: ReadonlyMap<string, number>;
  /** `pairKey(a, b)` -> merge rank (lower merges first). */
  readonly ranks: ReadonlyMap<string, number>;
  readonly startId: number;
  readonly endId: number;
  readonly size: number;
  /** Where it was loaded from, for messages. */
  readonly source: string;
}

export type VocabularySource = string | { vocabJson: string; mergesTxt: string } | { bpeGz: string };

/** open_clip keeps merges[1 : 49152 - 256 - 2 + 1]. */
const OPENCLIP_MERGE_COUNT = 49152 - 256 - 2;
const GZ_NAME = 'bpe_simple_vocab_16e6.txt.gz';

function vocabError(subject: string, message: string, cause?: unknown): ClipError {
  return new ClipError('E_VOCAB', `${message} (${subject})`, { subject, cause });
}

const SIMPLE_MERGE = /^([^\s\x1c-\x1f]+) ([^\s\x1c-\x1f]+)$/;

/** Split one merges line into its pair (Python `line.split()`), or throw E_VOCAB naming the line. */
function parseMerge(line: string, lineNo: number, subject: string): [string, string] {
  const simple = SIMPLE_MERGE.exec(line);
  if (simple) return [simple[1], simple[2]];
  const parts = collapseWhitespace(line).split(' ');
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw vocabError(subject, `malformed merge on line ${lineNo}: ${JSON.stringify(line.slice(0, 80))}`);
  }
  return [parts[0], parts[1]];
}

function buildRanks(merges: [string, string][]): Map<string, number> {
  const ranks = new Map<string, number>();
  merges.forEach(([a, b], i) => ranks.set(pairKey(a, b), i));
  return ranks;
}

/** Vocabulary from the text of open_clip's merges file (already gunzipped). */
export function vocabularyFromBpeText(text: string, subject: string): Vocabulary {
  // Only lines 1..48894 matter; the file has many more, so walk lines instead of splitting it all.
  const merges: [string, string][] = [];
  let pos = text.indexOf('\n') + 1;
  while (pos > 0 && pos < text.length && merges.length < OPENCLIP_MERGE_COUNT) {
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    merges.push(parseMerge(text.slice(pos, end), merges.length + 2, subject));
    pos = end + 1;
  }
  if (merges.length === 0) throw vocabError(subject, 'the BPE file has no merges');

  const byteChars = bytesToUnicode();
  const symbols = vocabularyByteOrder().map((b) => byteChars[b]);
  const vocab = [...symbols, ...symbols.map((s) => s + END_OF_WORD), ...merges.map(([a, b]) => a + b)];
  vocab.push('<start_of_text>', '<end_of_text>');
  // Like Python's dict(zip(vocab, range(...))): a repeated symbol keeps its last id.
  const encoder = new Map<string, number>();
  vocab.forEach((symbol, id) => encoder.set(symbol, id));
  return {
    encoder,
    ranks: buildRanks(merges),
    startId: encoder.get('<start_of_text>') as number,
    endId: encoder.get('<end_of_text>') as number,
    size: encoder.size,
    source: subject,
  };
}

/** Vocabulary from Hugging Face `vocab.json` and `merges.txt` texts; errors name `subject` / `mergesSubject`. */
export function vocabularyFromHf(vocabJson: string, mergesTxt: string, subject: string, mergesSubject = subject): Vocabulary {
  let parsed: unknown;
  try {
    parsed = JSON.parse(vocabJson);
  } catch (err) {
    throw vocabError(subject, 'vocab.json is not valid JSON', err);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw vocabError(subject, 'vocab.json must be an object of token -> id');
  }
  const entries = parsed as Record<string, unknown>;
  const encoder = new Map<string, number>();
  let size = 0;
  for (const token in entries) {
    const id = entries[token];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw vocabError(subject, `vocab.json gives ${JSON.stringify(token)} a non-integer id`);
    }
    encoder.set(token, id);
    size++;
  }
  const startId = encoder.get('<|startoftext|>') ?? encoder.get('<start_of_text>');
  const endId = encoder.get('<|endoftext|>') ?? encoder.get('<end_of_text>');
  if (startId === undefined || endId === undefined) {
    throw vocabError(subject, 'vocab.json lacks <|startoftext|> / <|endoftext|>');
  }

  const merges: [string, string][] = [];
  let lineNo = 0;
  // Like open_clip (and transformers' CLIPTokenizer), only the first 48894 merges count.
  for (let pos = 0; pos < mergesTxt.length && merges.length < OPENCLIP_MERGE_COUNT; ) {
    let end = mergesTxt.indexOf('\n', pos);
    if (end < 0) end = mergesTxt.length;
    const line = mergesTxt.slice(pos, end);
    lineNo++;
    pos = end + 1;
    // Skip the "#version: 0.2" header and blank lines.
    if ((lineNo === 1 && line.startsWith('#')) || line.trim() === '') continue;
    merges.push(parseMerge(line, lineNo, mergesSubject));
  }
  if (merges.length === 0) throw vocabError(mergesSubject, 'merges.txt has no merges');

  // Every symbol BPE can produce must have an id, or encoding would fail later.
  for (const ch of bytesToUnicode()) {
    if (!encoder.has(ch) || !encoder.has(ch + END_OF_WORD)) {
      throw vocabError(subject, `vocab.json lacks the byte symbol ${JSON.stringify(ch)}`);
    }
  }
  for (const [a, b] of merges) {
    if (!encoder.has(a + b)) throw vocabError(subject, `vocab.json lacks merged symbol ${JSON.stringify(a + b)}`);
  }
  // open_clip's special-token strings resolve to the same ids in both layouts.
  encoder.set('<start_of_text>', startId);
  encoder.set('<end_of_text>', endId);
  return { encoder, ranks: buildRanks(merges), startId, endId, size, source: subject };
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/** A vocabulary file, bounded: missing is E_NOT_FOUND; a FIFO, device, directory or oversized file E_VOCAB. */
async function readFile(p: string, what: string): Promise<Buffer> {
  try {
    return await readRegularFile(p, { what, maxBytes: FILE_LIMITS.vocabulary });
  } catch (err) {
    if (err instanceof ClipError && err.code !== 'E_NOT_FOUND') throw vocabError(p, err.message, err);
    throw err;
  }
}

/** Gunzips off the main thread, stopping at FILE_LIMITS.vocabulary bytes (a gzip bomb fails fast). */
async function gunzipBounded(compressed: Buffer, file: string): Promise<Buffer> {
  try {
    return await gunzipAsync(compressed, { maxOutputLength: FILE_LIMITS.vocabulary });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw vocabError(file, `the BPE vocabulary inflates to more than ${FILE_LIMITS.vocabulary} bytes (open_clip's is 3.2 MB): not a vocabulary`, err);
    }
    throw vocabError(file, 'the BPE vocabulary is not a valid gzip file', err);
  }
}

const gunzipAsync = promisify(gunzip);

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeText(bytes: Buffer, subject: string): string {
  try {
    return UTF8.decode(bytes);
  } catch (err) {
    throw vocabError(subject, 'the vocabulary file is not UTF-8 text', err);
  }
}

async function loadBpeGz(file: string): Promise<Vocabulary> {
  const compressed = await readFile(file, 'BPE vocabulary');
  const raw = await gunzipBounded(compressed, file);
  return vocabularyFromBpeText(decodeText(raw, file), file);
}

async function loadHf(vocabFile: string, mergesFile: string): Promise<Vocabulary> {
  const [vocab, merges] = await Promise.all([readFile(vocabFile, 'vocab.json'), readFile(mergesFile, 'merges.txt')]);
  return vocabularyFromHf(decodeText(vocab, vocabFile), decodeText(merges, mergesFile), vocabFile, mergesFile);
}

/** Sibling file a vocabulary file needs; missing means the vocabulary is incomplete (E_VOCAB). */
async function sibling(file: string, name: string): Promise<string> {
  const p = path.join(path.dirname(file), name);
  if (!(await exists(p))) throw vocabError(p, `${path.basename(file)} needs ${name} beside it`);
  return p;
}

/**
 * Load a vocabulary from a model directory (vocab.json + merges.txt, else bpe_simple_vocab_16e6.txt.gz),
 * from one of those files, or from explicit paths.
 */
export async function loadVocabulary(source: VocabularySource): Promise<Vocabulary> {
  if (typeof source === 'object' && source !== null) {
    if ('bpeGz' in source && typeof source.bpeGz === 'string') return loadBpeGz(source.bpeGz);
    if ('vocabJson' in source && typeof source.vocabJson === 'string' && typeof source.mergesTxt === 'string') {
      return loadHf(source.vocabJson, source.mergesTxt);
    }
  }
  if (typeof source !== 'string' || source === '') {
    throw invalid('a path, { vocabJson, mergesTxt } or { bpeGz }', 'tokenizer source', source);
  }
  let stat;
  try {
    stat = await fs.stat(source);
  } catch (err) {
    throw new ClipError('E_NOT_FOUND', `tokenizer vocabulary path not found: ${source}`, { subject: source, cause: err });
  }
  if (stat.isDirectory()) {
    const vocabFile = path.join(source, 'vocab.json');
    const mergesFile = path.join(source, 'merges.txt');
    if ((await exists(vocabFile)) && (await exists(mergesFile))) return loadHf(vocabFile, mergesFile);
    const gz = path.join(source, GZ_NAME);
    if (await exists(gz)) return loadBpeGz(gz);
    throw vocabError(source, `no tokenizer vocabulary (vocab.json + merges.txt or ${GZ_NAME}) in the directory`);
  }
  const base = path.basename(source);
  if (base.endsWith('.gz')) return loadBpeGz(source);
  if (base === 'merges.txt') return loadHf(await sibling(source, 'vocab.json'), source);
  if (base.endsWith('.json')) return loadHf(source, await sibling(source, 'merges.txt'));
  throw vocabError(source, 'unrecognised vocabulary file (expected vocab.json, merges.txt or a .txt.gz)');
}
