import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import test from 'tape';
import { isClipError } from '../lib/errors.js';
import { ClipTokenizer, cleanLower, fixText, pyHtmlUnescape } from '../lib/tokenizer/index.js';
import { bytesToUnicode, vocabularyByteOrder } from '../lib/tokenizer/bpe.js';
import { fixture } from './helpers/fixtures.js';

const START = 49406;
const END = 49407;
const GZ = fixture('vocab', 'bpe_simple_vocab_16e6.txt.gz');
const HF_DIR = fixture('vocab', 'hf');

interface Case {
  text: string;
  ids: number[];
}
const cases = JSON.parse(readFileSync(fixture('tokenizer_cases.json'), 'utf8')) as Case[];

const layouts: [string, () => Promise<ClipTokenizer>][] = [
  ['gz (open_clip bpe_simple_vocab_16e6.txt.gz)', () => ClipTokenizer.load(GZ)],
  ['gz via { bpeGz }', () => ClipTokenizer.load({ bpeGz: GZ })],
  ['hf directory (vocab.json + merges.txt)', () => ClipTokenizer.load(HF_DIR)],
  [
    'hf via { vocabJson, mergesTxt }',
    () => ClipTokenizer.load({ vocabJson: path.join(HF_DIR, 'vocab.json'), mergesTxt: path.join(HF_DIR, 'merges.txt') }),
  ],
  ['model directory xxlarge-tiny', () => ClipTokenizer.load(fixture('models', 'xxlarge-tiny'))],
];

const tokenizers = new Map<string, ClipTokenizer>();
async function tokenizerFor(name: string, load: () => Promise<ClipTokenizer>): Promise<ClipTokenizer> {
  let tok = tokenizers.get(name);
  if (!tok) {
    tok = await load();
    tokenizers.set(name, tok);
  }
  return tok;
}

const gzTokenizer = () => tokenizerFor(layouts[0][0], layouts[0][1]);

/** The fixture's full 77-wide row: its ids padded with 0. */
function paddedRow(ids: number[]): number[] {
  return [...ids, ...new Array<number>(77 - ids.length).fill(0)];
}

for (const [name, load] of layouts) {
  test(`tokenizer_cases.json: every case identical with ${name}`, async (t) => {
    const tok = await tokenizerFor(name, load);
    t.equal(tok.startId, START, 'start id');
    t.equal(tok.endId, END, 'end id');
    t.equal(tok.vocabSize, 49408, 'vocab size');
    const rows = tok.tokenizeRows(cases.map((c) => c.text));
    let passed = 0;
    cases.forEach((c, i) => {
      const row = rows[i];
      const prefixOk = row.slice(0, c.ids.length).join() === c.ids.join();
      // The fixture stops at the first end token; a text that spells out <end_of_text> has more after it.
      const literalEnd = /<end_of_text>/i.test(c.text);
      const rest = row.slice(c.ids.length);
      const lastNonZero = rest.length - 1 - [...rest].reverse().findIndex((id) => id !== 0);
      const restOk = literalEnd
        ? rest.lastIndexOf(END) === lastNonZero // the rest still ends with the end token, then zeros
        : row.join() === paddedRow(c.ids).join();
      if (prefixOk && restOk) passed++;
      else t.fail(`case ${i} ${JSON.stringify(c.text)}:\n  got  ${row.join(',')}\n  want ${c.ids.join(',')}`);
    });
    t.equal(passed, cases.length, `${passed}/${cases.length} cases identical`);
  });
}

test('both layouts agree on every case, token for token', async (t) => {
  const gz = await gzTokenizer();
  const hf = await tokenizerFor(layouts[2][0], layouts[2][1]);
  const texts = cases.map((c) => c.text);
  t.deepEqual(Array.from(hf.tokenize(texts)), Array.from(gz.tokenize(texts)));
});

test('encode() gives the ids between start and end', async (t) => {
  const tok = await gzTokenizer();
  for (const c of cases.filter((x) => x.ids.length < 77 && !/<end_of_text>/i.test(x.text))) {
    t.deepEqual(tok.encode(c.text), c.ids.slice(1, -1), JSON.stringify(c.text));
  }
  t.deepEqual(tok.encode('<start_of_text>'), [START], 'the literal special token maps to its id');
  t.deepEqual(tok.encode('   '), [], 'whitespace only');
});

test('padding, truncation and custom context lengths', async (t) => {
  const tok = await gzTokenizer();
  const ids = tok.encode('a photo of a cat.');
  const row = tok.tokenizeRows('a photo of a cat.')[0];
  t.equal(row.length, 77);
  t.deepEqual(row.slice(0, ids.length + 2), [START, ...ids, END]);
  t.ok(row.slice(ids.length + 2).every((v) => v === 0), 'padded with 0');

  const long = Array.from({ length: 120 }, (_, i) => `word${i}`).join(' ');
  const full = [START, ...tok.encode(long), END];
  t.ok(full.length > 77);
  for (const n of [77, 16, 5, 2, 1]) {
    const r = tok.tokenizeRows(long, n)[0];
    t.deepEqual(r, [...full.slice(0, n - 1), END], `context ${n}: cut, last id forced to the end token`);
  }
  const huge = 'lorem ipsum dolor sit amet '.repeat(2000);
  const hugeIds = tok.encode(huge);
  t.equal(hugeIds.length, 2000 * tok.encode('lorem ipsum dolor sit amet').length, 'a 10,000-word text encodes whole');
  t.deepEqual(tok.tokenizeRows(huge)[0], [START, ...hugeIds.slice(0, 75), END], 'and its row is cut to 77');
  // Exactly one too many (start + 76 BPE ids + end = 78): the last BPE id gives way to the end token.
  const exact = tok.tokenizeRows('a '.repeat(76), 77)[0];
  t.equal(exact[76], END);
  t.equal(exact.filter((v) => v === END).length, 1);

  const short = tok.tokenizeRows(['a cat', ''], 8);
  t.deepEqual(short, [
    [START, ...tok.encode('a cat'), END, 0, 0, 0, 0],
    [START, END, 0, 0, 0, 0, 0, 0],
  ]);
  t.deepEqual(tok.tokenizeRows('', 1), [[END]], 'context 1 holds just the end token');

  const flat = tok.tokenize(['a', 'b', 'c'], 10);
  t.ok(flat instanceof Int32Array);
  t.equal(flat.length, 30);
  t.deepEqual(Array.from(flat.subarray(10, 20)), tok.tokenizeRows('b', 10)[0], 'row-major layout');
  t.equal(tok.tokenize([]).length, 0, 'no texts, no rows');
});

test('argument errors are E_INVALID_ARGUMENT', async (t) => {
  const tok = await gzTokenizer();
  const bad: [string, () => unknown][] = [
    ['encode(number)', () => tok.encode(42 as unknown as string)],
    ['tokenize(null)', () => tok.tokenize(null as unknown as string)],
    ['tokenize([string, number])', () => tok.tokenize(['ok', 3] as unknown as string[])],
    ['tokenize(sparse array)', () => tok.tokenize(new Array<string>(2))],
    ['context 0', () => tok.tokenize('x', 0)],
    ['context -1', () => tok.tokenize('x', -1)],
    ['context 1.5', () => tok.tokenize('x', 1.5)],
    ['context NaN', () => tok.tokenize('x', NaN)],
    ['context "77"', () => tok.tokenize('x', '77' as unknown as number)],
  ];
  for (const [what, fn] of bad) {
    try {
      fn();
      t.fail(`${what} should throw`);
    } catch (err) {
      t.ok(isClipError(err, 'E_INVALID_ARGUMENT'), `${what}: ${(err as Error).message}`);
    }
  }
});

/** A throwaway directory for hand-made vocabulary files. */
function scratch(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'cclip-tok-'));
}

async function rejects(t: test.Test, what: string, promise: Promise<unknown>, code: 'E_VOCAB' | 'E_NOT_FOUND' | 'E_INVALID_ARGUMENT') {
  try {
    await promise;
    t.fail(`${what} should fail`);
  } catch (err) {
    t.ok(isClipError(err, code), `${what}: ${code}: ${(err as Error).message}`);
  }
}

/** A tiny vocabulary: the 512 byte symbols, a few merges, the special tokens. */
function tinyVocabulary(merges: string[]): { vocab: Record<string, number>; mergesTxt: string; bpeText: string } {
  const chars = bytesToUnicode();
  const symbols = vocabularyByteOrder().map((b) => chars[b]);
  const list = [...symbols, ...symbols.map((s) => s + '</w>'), ...merges.map((m) => m.replace(' ', ''))];
  list.push('<|startoftext|>', '<|endoftext|>');
  const vocab = Object.fromEntries(list.map((s, i) => [s, i]));
  return {
    vocab,
    mergesTxt: ['#version: 0.2', ...merges].join('\n') + '\n',
    bpeText: ['tiny.txt#version: 0.2', ...merges].join('\n') + '\n',
  };
}

test('a hand-made vocabulary loads from both layouts with the same ids', async (t) => {
  const dir = scratch();
  try {
    const tiny = tinyVocabulary(['h e', 'l l', 'l o</w>', 'he ll', 'hell o</w>']);
    writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(tiny.vocab));
    writeFileSync(path.join(dir, 'merges.txt'), tiny.mergesTxt);
    writeFileSync(path.join(dir, 'tiny.txt.gz'), gzipSync(tiny.bpeText));
    const hf = await ClipTokenizer.load(dir);
    const gz = await ClipTokenizer.load(path.join(dir, 'tiny.txt.gz'));
    const viaMerges = await ClipTokenizer.load(path.join(dir, 'merges.txt'));
    t.equal(hf.startId, 517);
    t.equal(gz.startId, 517);
    t.equal(hf.vocabSize, 519);
    t.deepEqual(hf.encode('Hello'), [tiny.vocab['hello</w>']]);
    t.deepEqual(gz.encode('hello, help'), hf.encode('hello, help'));
    t.deepEqual(viaMerges.encode('hello'), hf.encode('hello'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('missing and malformed vocabularies: E_NOT_FOUND / E_VOCAB', async (t) => {
  const dir = scratch();
  try {
    const missing = path.join(dir, 'nope');
    await rejects(t, 'missing path', ClipTokenizer.load(missing), 'E_NOT_FOUND');
    await rejects(t, 'missing { bpeGz }', ClipTokenizer.load({ bpeGz: path.join(dir, 'nope.txt.gz') }), 'E_NOT_FOUND');
    await rejects(
      t,
      'missing { vocabJson, mergesTxt }',
      ClipTokenizer.load({ vocabJson: path.join(dir, 'v.json'), mergesTxt: path.join(dir, 'm.txt') }),
      'E_NOT_FOUND',
    );
    await rejects(t, 'a directory without vocabulary files', ClipTokenizer.load(dir), 'E_VOCAB');
    await rejects(t, 'bad source object', ClipTokenizer.load({} as unknown as string), 'E_INVALID_ARGUMENT');

    const tiny = tinyVocabulary(['h e', 'l l']);
    writeFileSync(path.join(dir, 'not-gzip.txt.gz'), 'plain text');
    await rejects(t, 'a .gz that is not gzip', ClipTokenizer.load(path.join(dir, 'not-gzip.txt.gz')), 'E_VOCAB');

    writeFileSync(path.join(dir, 'bad-merge.txt.gz'), gzipSync('header\nh e\nthree parts here\n'));
    await rejects(t, 'gz merges line with three parts', ClipTokenizer.load(path.join(dir, 'bad-merge.txt.gz')), 'E_VOCAB');

    writeFileSync(path.join(dir, 'header-only.txt.gz'), gzipSync('header only\n'));
    await rejects(t, 'gz without merges', ClipTokenizer.load(path.join(dir, 'header-only.txt.gz')), 'E_VOCAB');

    const hf = (vocab: string, merges: string | null) => {
      const d = mkdtempSync(path.join(dir, 'hf-'));
      writeFileSync(path.join(d, 'vocab.json'), vocab);
      if (merges !== null) writeFileSync(path.join(d, 'merges.txt'), merges);
      return d;
    };
    const goodVocab = JSON.stringify(tiny.vocab);
    const badMerges = hf(goodVocab, '#version: 0.2\nh e\nl\n');
    await rejects(t, 'malformed merges.txt', ClipTokenizer.load(badMerges), 'E_VOCAB');
    await ClipTokenizer.load(badMerges).catch((err: { subject?: string }) =>
      t.equal(err.subject, path.join(badMerges, 'merges.txt'), 'the subject is merges.txt'),
    );
    await rejects(t, 'merges.txt with an unknown merged symbol', ClipTokenizer.load(hf(goodVocab, '#version: 0.2\nq z\n')), 'E_VOCAB');
    await rejects(t, 'vocab.json that is not JSON', ClipTokenizer.load(hf('{"a": ', tiny.mergesTxt)), 'E_VOCAB');
    await rejects(t, 'vocab.json that is an array', ClipTokenizer.load(hf('[1, 2]', tiny.mergesTxt)), 'E_VOCAB');
    const noSpecials = { ...tiny.vocab };
    delete noSpecials['<|endoftext|>'];
    await rejects(t, 'vocab.json without <|endoftext|>', ClipTokenizer.load(hf(JSON.stringify(noSpecials), tiny.mergesTxt)), 'E_VOCAB');
    const lonely = hf(goodVocab, null);
    await rejects(t, 'a directory with vocab.json only', ClipTokenizer.load(lonely), 'E_VOCAB');
    await rejects(t, 'vocab.json without merges.txt beside it', ClipTokenizer.load(path.join(lonely, 'vocab.json')), 'E_VOCAB');

    try {
      await ClipTokenizer.load(path.join(dir, 'bad-merge.txt.gz'));
    } catch (err) {
      t.ok(/line 3/.test((err as Error).message), 'the message names the malformed line');
      t.equal((err as { subject?: string }).subject, path.join(dir, 'bad-merge.txt.gz'), 'subject is the file');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Python html.unescape semantics', (t) => {
  const expect: [string, string][] = [
    ['&amp', '&'],
    ['&amp;amp;', '&amp;'],
    ['&#0;', '\ufffd'],
    ['&#x80;', '\u20ac'],
    ['&#128;', '\u20ac'],
    ['&notit;', '\u00acit;'],
    ['&#xD800;', '\ufffd'],
    ['&#1114112;', '\ufffd'],
    ['&#11;', ''],
    ['&#65;&#x42;', 'AB'],
    ['&AMP;', '&'],
    ['&Eacute', '\u00c9'],
    ['&ampx;', '&x;'],
    ['a &lt;b&gt; c', 'a <b> c'],
  ];
  for (const [input, output] of expect) t.equal(pyHtmlUnescape(input), output, JSON.stringify(input));
  t.end();
});

test('ftfy fix_text repairs (values from ftfy 6.3.1)', (t) => {
  const expect: [string, string][] = [
    ['s\u00c3\u00b3', 's\u00f3'],
    ['\u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d', '"quoted"'],
    ['voil\u00c3  le travail', 'voil\u00e0 le travail'],
    ['\u00c3 la mode', '\u00e0 la mode'],
    ['\u00c3\u00bcber na\u00c3\u00afve caf\u00c3\u00a9', '\u00fcber na\u00efve caf\u00e9'],
    ['\ufb01rst \ufb02oor', 'first floor'],
    ['\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33', 'LOUD NOISES'],
    ['\u001b[36;44mblue\u001b[0m', 'blue'],
    ['P&EACUTE;REZ', 'P\u00c9REZ'],
    ['<b>&amp;</b>', '<b>&amp;</b>'],
    ['a&amp;b\n<p>\n&lt;', 'a&b\n<p>\n&lt;'],
    ['line1\r\nline2\u2028x', 'line1\nline2\nx'],
    ['e\u0301', '\u00e9'],
    ['This text was never UTF-8 at all\u0085', 'This text was never UTF-8 at all\u2026'],
    ['\ufeffbom', 'bom'],
  ];
  for (const [input, output] of expect) t.equal(fixText(input), output, JSON.stringify(input));
  t.end();
});

test('cleaning and words follow Python (values from open_clip + ftfy 6.3.1 + regex)', async (t) => {
  const tok = await gzTokenizer();
  t.equal(cleanLower('  A\u00a0B\u3000C\x1cD\u2029E\tF  '), 'a b cd e f', 'Python whitespace; ftfy drops U+001C');
  t.deepEqual(tok.encode('  A\u00a0B\u3000C\x1cD\u2029E\tF  '), [320, 321, 4480, 324, 325]);
  t.equal(cleanLower('\u0130stanbul'), 'i\u0307stanbul', "Python lowercases 'İ' to 'i' + combining dot");
  t.deepEqual(tok.encode('\u0130stanbul'), [328, 16384, 11231]);
  // With a '<' ftfy leaves entities alone; html.unescape then makes U+FEFF, which is not whitespace to Python.
  t.equal(cleanLower('<&#xfeff;x'), '<\ufeffx');
  t.deepEqual(tok.encode('<&#xfeff;x'), [27, 171, 119, 379, 343]);
  t.equal(cleanLower('double escaped &amp;amp; here'), 'double escaped & here');
});

test('the 80,000 ImageNet zero-shot prompts tokenize (timing: bench/tokenizer.ts)', async (t) => {
  const tok = await gzTokenizer();
  const classes = JSON.parse(readFileSync(fixture('zeroshot', 'imagenet_classnames.json'), 'utf8')) as string[];
  const templates = (JSON.parse(readFileSync(fixture('zeroshot', 'templates.json'), 'utf8')) as Record<string, string[]>)
    .openai_imagenet;
  const prompts = classes.flatMap((c) => templates.map((tpl) => tpl.replace('{}', c)));
  t.equal(prompts.length, 80_000);
  const rows = tok.tokenize(prompts);
  t.equal(rows.length, 80_000 * 77);
  let wellFormed = 0;
  for (let r = 0; r < prompts.length; r++) {
    const row = rows.subarray(r * 77, r * 77 + 77);
    const end = row.indexOf(END);
    if (row[0] === START && end > 1 && row.subarray(end + 1).every((v) => v === 0)) wellFormed++;
  }
  t.equal(wellFormed, prompts.length, 'every row: start, ids, end, zeros');
  const again = tok.tokenize(prompts);
  t.ok(
    again.every((v, i) => v === rows[i]),
    'a second pass over a warm cache gives the same rows',
  );
  for (const i of [0, 12_345, 79_999]) {
    t.deepEqual(Array.from(rows.subarray(i * 77, i * 77 + 77)), tok.tokenizeRows(prompts[i])[0], `row ${i} alone`);
  }
});
