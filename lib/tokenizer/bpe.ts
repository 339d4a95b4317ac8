/** Byte-level BPE as in OpenAI CLIP / open_clip `SimpleTokenizer.bpe`. */

/**
 * GPT-2's reversible byte -> character table: printable Latin-1 bytes map to themselves, the others
 * to U+0100 upwards, so no byte becomes whitespace or a control character.
 */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) if (printable(b)) table[b] = String.fromCharCode(b);
  for (let b = 0; b < 256; b++) if (!printable(b)) table[b] = String.fromCharCode(256 + n++);
  return table;
}

/** Bytes in the order open_clip lists them in the vocabulary: printable ones first, then the rest. */
export function vocabularyByteOrder(): number[] {
  const table = bytesToUnicode();
  return Array.from({ length: 256 }, (_, b) => b).sort((a, b) => table[a].charCodeAt(0) - table[b].charCodeAt(0));
}

export const END_OF_WORD = '</w>';

/** Merge-rank key of a symbol pair (symbols never contain spaces). */
export const pairKey = (a: string, b: string): string => a + ' ' + b;

/**
 * Split one byte-encoded token into BPE symbols: start from characters (the last carrying `</w>`) and
 * repeatedly merge every occurrence of the lowest-ranked adjacent pair.
 */
export function bpeSymbols(token: string, ranks: ReadonlyMap<string, number>): string[] {
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
