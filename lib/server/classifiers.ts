/**
 * Zero-shot classifiers built from batched text embeddings (the arithmetic of lib/zero-shot.ts, shared with
 * Clip.zeroShot and Clip.classify) and an LRU cache of them keyed by labels + templates.
 */
import type { ZeroShotClassifier } from '../zero-shot.js';

export { classifierFrom, prompts, rank } from '../zero-shot.js';

/** Least-recently-used cache of classifier promises; a failed build is forgotten. */
export class ClassifierCache {
  private readonly entries = new Map<string, Promise<ZeroShotClassifier>>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached classifier, or one built now; `hit` says which. */
  get(labels: readonly string[], templates: readonly string[], build: () => Promise<ZeroShotClassifier>): { hit: boolean; classifier: Promise<ZeroShotClassifier> } {
    const key = JSON.stringify([labels, templates]);
    const cached = this.entries.get(key);
    if (cached) {
      this.entries.delete(key);
      this.entries.set(key, cached);
      return { hit: true, classifier: cached };
    }
    const classifier = build();
    if (this.capacity > 0) {
      this.entries.set(key, classifier);
      classifier.catch(() => {
        if (this.entries.get(key) === classifier) this.entries.delete(key);
      });
      while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    }
    return { hit: false, classifier };
  }
}
