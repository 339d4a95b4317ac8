/**
 * Zero-shot classifiers built from batched text embeddings (the same arithmetic as Clip.zeroShot and
 * Clip.classify) and an LRU cache of them keyed by labels + templates.
 */
import type { LabelScore, ZeroShotClassifier } from '../clip.js';
import { Embeddings, normalizeInPlace, softmaxInPlace } from '../embeddings.js';

/** open_clip's prompt expansion: `{}` replaced by the label, else the label appended. */
export function prompts(labels: readonly string[], templates: readonly string[]): string[] {
  return labels.flatMap((label) => templates.map((t) => (t.includes('{}') ? t.replaceAll('{}', label) : `${t} ${label}`)));
}

/** Per label, the renormalized mean of its normalized template embeddings ([labels * templates, D] in). */
export function classifierFrom(labels: readonly string[], templateCount: number, promptEmbeds: Float32Array, D: number): ZeroShotClassifier {
  const weights = new Float32Array(labels.length * D);
  for (let c = 0; c < labels.length; c++) {
    const w = weights.subarray(c * D, (c + 1) * D);
    for (let t = 0; t < templateCount; t++) {
      const row = promptEmbeds.subarray((c * templateCount + t) * D, (c * templateCount + t + 1) * D);
      for (let k = 0; k < D; k++) w[k] += row[k] / templateCount;
    }
    normalizeInPlace(w);
  }
  return { labels: [...labels], weights: new Embeddings(weights, labels.length, D) };
}

/** Labels of one normalized image embedding ranked by softmax(logitScale * cosine). */
export function rank(image: Float32Array, classifier: ZeroShotClassifier, logitScale: number): LabelScore[] {
  const { weights, labels } = classifier;
  const logits = new Float32Array(labels.length);
  for (let c = 0; c < labels.length; c++) {
    const w = weights.row(c);
    let s = 0;
    for (let k = 0; k < w.length; k++) s += image[k] * w[k];
    logits[c] = s;
  }
  const probs = softmaxInPlace(logits.map((x) => x * logitScale));
  return labels.map((label, c) => ({ label, score: probs[c] })).sort((a, b) => b.score - a.score);
}

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
