/**
 * BPE on long words (issue 18, class 1): the heap-and-linked-list merge loop gives the same symbols as the
 * straightforward rescan loop, and a word of a million characters takes about a second, not minutes.
 */
import { readFileSync } from 'node:fs';
import test from 'tape';
import { bpeSymbols, bytesToUnicode } from '../lib/tokenizer/bpe.js';
import { ClipTokenizer } from '../lib/tokenizer/index.js';
import { fixture } from './helpers/fixtures.js';
import { referenceBpeSymbols } from './helpers/reference-bpe.js';

const tokenizerPromise = ClipTokenizer.load(fixture('vocab', 'hf'));
const ranksPromise = tokenizerPromise.then((tok) => (tok as unknown as { vocab: { ranks: ReadonlyMap<string, number> } }).vocab.ranks);

/** A small deterministic generator, so a failure can be replayed. */
function generator(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomWord(random: () => number, length: number, alphabet: string[]): string {
  let w = '';
  for (let i = 0; i < length; i++) w += alphabet[Math.floor(random() * alphabet.length)];
  return w;
}

const BYTE_CHARS = bytesToUnicode();
const ALPHABETS: [string, string[]][] = [
  ['a-z', [...'abcdefghijklmnopqrstuvwxyz']],
  ['ab', ['a', 'b']],
  ['vowels and common consonants', [...'aeiounrst']],
  ['all 256 byte characters', BYTE_CHARS],
  ['digits and punctuation', [...'0123456789.,-!?']],
];

test('BPE: same symbols as the rescan loop on 1,500 random words up to 3,000 characters', async (t) => {
  t.timeoutAfter(120_000);
  const ranks = await ranksPromise;
  const random = generator(18);
  let same = 0;
  let total = 0;
  for (const [name, alphabet] of ALPHABETS) {
    let mismatches = 0;
    for (let k = 0; k < 300; k++) {
      const length = k < 290 ? 1 + Math.floor(random() * 400) : 1000 + Math.floor(random() * 2000);
      const word = randomWord(random, length, alphabet);
      const got = bpeSymbols(word, ranks);
      const want = referenceBpeSymbols(word, ranks);
      total++;
      if (got.join(' ') === want.join(' ')) same++;
      else if (++mismatches <= 2) t.fail(`${name}: ${JSON.stringify(word.slice(0, 60))}... (${length}): ${got.length} vs ${want.length} symbols`);
    }
  }
  t.equal(same, total, `${same}/${total} words identical`);
});

test('BPE: same symbols as the rescan loop on every word of the fixture texts, and on repeats', async (t) => {
  const ranks = await ranksPromise;
  const cases = JSON.parse(readFileSync(fixture('tokenizer_cases.json'), 'utf8')) as { text: string }[];
  const utf8 = new TextEncoder();
  const words = new Set<string>();
  for (const { text } of cases) for (const w of text.toLowerCase().split(/\s+/)) if (w) words.add([...utf8.encode(w)].map((b) => BYTE_CHARS[b]).join(''));
  for (const repeated of ['a', 'ab', 'abc', 'the', 'ing', 'xyz', 'aaab']) words.add(repeated.repeat(700));
  let same = 0;
  for (const w of words) if (bpeSymbols(w, ranks).join(' ') === referenceBpeSymbols(w, ranks).join(' ')) same++;
  t.equal(same, words.size, `${same}/${words.size} words identical`);
  t.deepEqual(bpeSymbols('', ranks), [], 'empty word');
  t.deepEqual(bpeSymbols('a', ranks), ['a</w>'], 'one character');
});

test('BPE: merge rounds are kept when a merge makes a pair of lower rank (a vocabulary out of order)', (t) => {
  // "x y" merges first; "a xy" has a lower rank than "y b", but the round of "x y" finishes before it.
  const ranks = new Map<string, number>([
    ['b c', 0],
    ['x y', 2],
    ['a xy', 1],
    ['y b', 3],
    ['xy b', 4],
    ['a a', 5],
  ]);
  for (const word of ['axyb', 'axyxyb', 'xybc', 'aaaa', 'aaa', 'axybcaxyb', 'xyxyxy', 'yb', 'ayb']) {
    t.deepEqual(bpeSymbols(word, ranks), referenceBpeSymbols(word, ranks), word);
  }
  t.end();
});

test('BPE: a 1,000,000-character word tokenizes in seconds (the rescan loop took minutes), linear-ish growth', async (t) => {
  t.timeoutAfter(60_000);
  const tok = await tokenizerPromise;
  const random = generator(7);
  const letters = ALPHABETS[0][1];
  const timeOf = (n: number): number => {
    const word = randomWord(random, n, letters);
    const t0 = performance.now();
    const row = tok.tokenize(word)[0];
    t.equal(row, tok.startId, `${n} letters: a row`);
    return performance.now() - t0;
  };
  timeOf(10_000); // warm-up
  const small = timeOf(100_000);
  const big = timeOf(1_000_000);
  t.comment(`100,000 letters: ${small.toFixed(0)} ms; 1,000,000 letters: ${big.toFixed(0)} ms (ratio ${(big / small).toFixed(1)} for 10x the length)`);
  t.ok(big < 20_000, `a million random letters in ${big.toFixed(0)} ms (bound 20 s on a loaded machine)`);
  t.ok(big / small < 40, 'ten times the length costs far less than a hundred times the time');
});

test('tokenizeAsync: the same rows as tokenize, yields to the event loop, stops on abort', async (t) => {
  t.timeoutAfter(60_000);
  const tok = await tokenizerPromise;
  const random = generator(3);
  const texts = Array.from({ length: 40 }, (_, i) => (i % 2 ? randomWord(random, 16_384, ALPHABETS[0][1]) : `a photo of cat number ${i}`));
  texts.push(
    `${'many short words '.repeat(40)}${randomWord(random, 5000, ALPHABETS[0][1])}`, // the long word lies past the cut
    `${randomWord(random, 3000, ALPHABETS[2][1])} then short words`,
    'é'.repeat(5000),
    randomWord(random, 4000, [...'àéîõüßçñøåæ']),
    `<start_of_text>${randomWord(random, 2000, ALPHABETS[1][1])}<end_of_text>`,
  );
  const want = tok.tokenize(texts, 77);
  let ticks = 0;
  let worstGap = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    worstGap = Math.max(worstGap, now - last);
    last = now;
    ticks++;
  }, 5);
  const fresh = await ClipTokenizer.load(fixture('vocab', 'hf')); // a cold BPE cache
  last = performance.now();
  const got = await fresh.tokenizeAsync(texts, 77, { sliceMs: 10 });
  clearInterval(timer);
  t.ok(
    got.length === want.length && got.every((v, i) => v === want[i]),
    'identical rows',
  );
  t.ok(ticks > 0, `timers ran meanwhile (${ticks} ticks, longest gap ${worstGap.toFixed(0)} ms)`);
  const controller = new AbortController();
  controller.abort(new Error('gone'));
  await fresh.tokenizeAsync(texts, 77, { signal: controller.signal }).then(
    () => t.fail('resolved after abort'),
    (err: Error) => t.equal(err.message, 'gone', 'an aborted signal rejects with its reason'),
  );
});
