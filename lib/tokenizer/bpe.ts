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
 * repeatedly merge every occurrence of the lowest-ranked adjacent pair, leftmost first (what open_clip does).
 * The symbols are a linked list and the candidate pairs a heap ordered by (rank, position), so a word of n
 * characters costs O(n log n) instead of a full rescan per merge round.
 */
export function bpeSymbols(token: string, ranks: ReadonlyMap<string, number>): string[] {
  const steps = bpeSteps(token, ranks);
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/**
 * bpeSymbols as a generator that pauses (yields) after every `popsPerStep` heap entries, so a caller can spread
 * a long word's merges over several turns of the event loop. Returns the symbols.
 */
export function* bpeSteps(token: string, ranks: ReadonlyMap<string, number>, popsPerStep = 4096): Generator<void, string[], void> {
  let pops = 0;
  const symbols: string[] = Array.from(token);
  const n = symbols.length;
  if (n === 0) return symbols;
  symbols[n - 1] += END_OF_WORD;
  if (n === 1) return symbols;
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  /** Bumped whenever a symbol changes or is absorbed, so stale heap entries can be recognised. */
  const version = new Int32Array(n);
  const absorbed = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap = new PairHeap(n);
  const push = (left: number): void => {
    const right = next[left];
    if (left < 0 || right < 0) return;
    const rank = ranks.get(pairKey(symbols[left], symbols[right]));
    if (rank !== undefined) heap.push(rank, left, version[left], version[right]);
  };
  for (let i = 0; i + 1 < n; i++) push(i);

  while (heap.size > 0) {
    // One round: every pair of the lowest rank present, left to right (the entries come out by position).
    const rank = heap.topRank();
    const round: number[] = [];
    while (heap.size > 0 && heap.topRank() === rank) {
      const left = heap.topLeft();
      const leftVersion = heap.topLeftVersion();
      const rightVersion = heap.topRightVersion();
      heap.pop();
      if (++pops === popsPerStep) {
        pops = 0;
        yield;
      }
      const right = next[left];
      if (right >= 0 && version[left] === leftVersion && version[right] === rightVersion) round.push(left, leftVersion, rightVersion);
    }
    const touched: number[] = [];
    for (let k = 0; k < round.length; k += 3) {
      const left = round[k];
      const right = next[left];
      // An earlier merge of this round may have used one of the two (as in "a a a"): skip, as the rescan would.
      if (right < 0 || version[left] !== round[k + 1] || version[right] !== round[k + 2]) continue;
      symbols[left] += symbols[right];
      version[left]++;
      version[right]++;
      absorbed[right] = 1;
      const after = next[right];
      next[left] = after;
      if (after >= 0) prev[after] = left;
      touched.push(left);
    }
    // New pairs enter the heap after the round, so a lower rank they may have cannot cut into it.
    for (const left of touched) {
      if (absorbed[left]) continue;
      const before = prev[left];
      if (before >= 0) push(before);
      push(left);
    }
  }
  const out: string[] = [];
  for (let i = 0; i >= 0; i = next[i]) out.push(symbols[i]);
  return out;
}

/** A binary min-heap of candidate merges keyed by (rank, left position), in flat typed arrays. */
class PairHeap {
  private rank: Int32Array;
  private left: Int32Array;
  private leftVersion: Int32Array;
  private rightVersion: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.rank = new Int32Array(Math.max(capacity, 16));
    this.left = new Int32Array(this.rank.length);
    this.leftVersion = new Int32Array(this.rank.length);
    this.rightVersion = new Int32Array(this.rank.length);
  }

  topRank(): number {
    return this.rank[0];
  }

  topLeft(): number {
    return this.left[0];
  }

  topLeftVersion(): number {
    return this.leftVersion[0];
  }

  topRightVersion(): number {
    return this.rightVersion[0];
  }

  push(rank: number, left: number, leftVersion: number, rightVersion: number): void {
    if (this.size === this.rank.length) this.grow();
    let i = this.size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(rank, left, this.rank[parent], this.left[parent])) break;
      this.move(parent, i);
      i = parent;
    }
    this.set(i, rank, left, leftVersion, rightVersion);
  }

  pop(): void {
    const last = --this.size;
    if (last === 0) return;
    const rank = this.rank[last];
    const left = this.left[last];
    const leftVersion = this.leftVersion[last];
    const rightVersion = this.rightVersion[last];
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= last) break;
      if (child + 1 < last && this.less(this.rank[child + 1], this.left[child + 1], this.rank[child], this.left[child])) child++;
      if (!this.less(this.rank[child], this.left[child], rank, left)) break;
      this.move(child, i);
      i = child;
    }
    this.set(i, rank, left, leftVersion, rightVersion);
  }

  private less(rankA: number, leftA: number, rankB: number, leftB: number): boolean {
    return rankA < rankB || (rankA === rankB && leftA < leftB);
  }

  private move(from: number, to: number): void {
    this.rank[to] = this.rank[from];
    this.left[to] = this.left[from];
    this.leftVersion[to] = this.leftVersion[from];
    this.rightVersion[to] = this.rightVersion[from];
  }

  private set(i: number, rank: number, left: number, leftVersion: number, rightVersion: number): void {
    this.rank[i] = rank;
    this.left[i] = left;
    this.leftVersion[i] = leftVersion;
    this.rightVersion[i] = rightVersion;
  }

  private grow(): void {
    const grown = (a: Int32Array): Int32Array => {
      const b = new Int32Array(a.length * 2);
      b.set(a);
      return b;
    };
    this.rank = grown(this.rank);
    this.left = grown(this.left);
    this.leftVersion = grown(this.leftVersion);
    this.rightVersion = grown(this.rightVersion);
  }
}
