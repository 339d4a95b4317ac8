/**
 * BPE on long words: the merge heap over a linked list (lib/tokenizer/bpe.ts) against the rescan loop it replaced
 * (test/helpers/reference-bpe.ts), on the same random words in the same run; reported as ratios.
 * Run: node --import tsx bench/bpe-long-words.ts [lengths, default 1024,4096,16384]
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bpeSymbols } from '../lib/tokenizer/bpe.js';
import { loadVocabulary } from '../lib/tokenizer/vocabulary.js';
import { referenceBpeSymbols } from '../test/helpers/reference-bpe.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixtures = process.env.CONVNEXT_CLIP_FIXTURES ? path.resolve(process.env.CONVNEXT_CLIP_FIXTURES) : path.resolve(root, '..', 'shared', 'fixtures');
const { ranks } = await loadVocabulary(path.join(fixtures, 'vocab', 'hf'));
const lengths = (process.argv[2] ?? '1024,4096,16384').split(',').map(Number);

let seed = 18;
const random = () => ((seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32);
const word = (n: number) => Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(random() * 26))).join('');

function cpuMs(fn: () => void): number {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

console.log(`machine: ${os.availableParallelism()} cores, load average ${os.loadavg()[0].toFixed(1)}; CPU ms per word (random letters)`);
console.log('| letters | heap (ms) | rescan (ms) | rescan / heap | same symbols |');
console.log('| ---: | ---: | ---: | ---: | --- |');
bpeSymbols(word(2000), ranks); // warm-up
for (const n of lengths) {
  const w = word(n);
  let fast: string[] = [];
  let slow: string[] = [];
  const heapMs = cpuMs(() => (fast = bpeSymbols(w, ranks)));
  const rescanMs = cpuMs(() => (slow = referenceBpeSymbols(w, ranks)));
  console.log(`| ${n} | ${heapMs.toFixed(1)} | ${rescanMs.toFixed(1)} | ${(rescanMs / heapMs).toFixed(0)}x | ${fast.join(' ') === slow.join(' ')} |`);
}
