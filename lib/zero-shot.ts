/**
 * open_clip's zero-shot arithmetic, once, for Clip and the server: prompt expansion, build_zero_shot_classifier
 * (per label the renormalized mean of its normalized template embeddings) and softmax(logit_scale * cosine).
 */
import { Embeddings, normalizeInPlace, softmaxInPlace } from './embeddings.js';
import { finiteFloats, invalid, is, mismatch, stringList } from './validate.js';

/** One unit vector per label. */
export interface ZeroShotClassifier {
  labels: string[];
  /** [labels.length, D]: mean of the normalized template embeddings, renormalized. */
  weights: Embeddings;
}

export interface LabelScore {
  label: string;
  score: number;
}

export const DEFAULT_TEMPLATES = ['a photo of a {}.'];

/** open_clip's prompt expansion: `{}` replaced by the label, else the label appended. */
export function prompts(labels: readonly string[], templates: readonly string[]): string[] {
  return labels.flatMap((label) => templates.map((t) => (t.includes('{}') ? t.replaceAll('{}', label) : `${t} ${label}`)));
}

/** Per label, the renormalized mean of its normalized template embeddings ([labels * templates, D] in, label-major). */
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
    logits[c] = s * logitScale;
  }
  const probs = softmaxInPlace(logits);
  return labels.map((label, c) => ({ label, score: probs[c] })).sort((a, b) => b.score - a.score);
}

/** A caller's classifier: labels, and exactly one finite weight row of width `dim` per label. */
export function checkClassifier(value: unknown, dim: number, name = 'classifier'): ZeroShotClassifier {
  if (!is.plainObject(value)) throw invalid('a zero-shot classifier {labels, weights} or an array of labels', name, value);
  const labels = stringList(value.labels, `${name}.labels`);
  const weights = value.weights;
  if (!(weights instanceof Embeddings)) throw invalid('Embeddings', `${name}.weights`, weights);
  if (weights.rows !== labels.length) throw mismatch(`Embeddings with one row per label (${labels.length})`, `${name}.weights`, `${weights.rows} rows`);
  if (weights.dim !== dim) throw mismatch(`Embeddings of width ${dim} (the model's embedDim)`, `${name}.weights`, `rows of width ${weights.dim}`);
  finiteFloats(weights.data, `${name}.weights`);
  return { labels, weights };
}
