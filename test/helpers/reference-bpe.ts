/**
 * The straightforward BPE loop (open_clip's `SimpleTokenizer.bpe` as written): each round scans the whole word
 * for the lowest-ranked pair and merges all its occurrences. Quadratic on long words; kept only as the reference
 * the fast implementation is checked against (tests) and timed against (bench).
 */
import { END_OF_WORD, pairKey } from '../../lib/tokenizer/bpe.js';

export function referenceBpeSymbols(token: string, ranks: ReadonlyMap<string, number>): string[] {
  let word: string[] = Array.from(token);
  word[word.length - 1] += END_OF_WORD;
  while (word.length > 1) {
    let best = Infinity;
    let first = '';
    let second = '';
    for (let i = 0; i + 1 < word.length; i++) {
      const rank = ranks.get(pairKey(word[i], word[i + 1]));
      if (rank !== undefined && rank < best) {
        best = rank;
        first = word[i];
        second = word[i + 1];
      }
    }
    if (best === Infinity) break;
    const merged: string[] = [];
    for (let i = 0; i < word.length; ) {
      if (i + 1 < word.length && word[i] === first && word[i + 1] === second) {
        merged.push(first + second);
        i += 2;
      } else {
        merged.push(word[i]);
        i += 1;
      }
    }
    word = merged;
  }
  return word;
}
