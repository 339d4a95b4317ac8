/**
 * The API users call: load a model directory, embed texts and images, build zero-shot classifiers.
 *
 *   const clip = await Clip.load(dir, { backend: 'auto', precision: 'bf16' });
 *   const texts = await clip.embedTexts(['a photo of a cat']);   // Embeddings [n, D], L2-normalized
 */
import type { ClipArchitecture } from './architecture.js';
import { loadWithBackend } from './backends/index.js';
import type { BackendModel, BackendName, Device, LoadProgress, Precision } from './backends/types.js';
import { readTensor } from './checkpoint/index.js';
import { Embeddings, matmulTransposed, normalizeInPlace, softmaxInPlace } from './embeddings.js';
import { ClipError } from './errors.js';
import { type ResolveOptions, resolveModel } from './hub/index.js';
import { type ImageSource, type PreprocessImageOptions, preprocessImages } from './image/index.js';
import { type ModelPaths, type PreprocessConfig, describeModel } from './model-dir.js';
import { ClipTokenizer } from './tokenizer/index.js';

export interface ClipLoadOptions {
  backend?: BackendName | 'auto';
  device?: Device;
  /** fp32 or bf16 weights; default fp32, except bf16 on the wasm backend (its heap is 4 GB). */
  precision?: Precision;
  /** Worker threads for CPU backends; 0 (default) uses every core. */
  threads?: number;
  onProgress?: (progress: LoadProgress) => void;
  /** How a Hugging Face name (`laion/CLIP-convnext_...`, `hf-hub:org/name@rev`) is resolved and downloaded. */
  hub?: ResolveOptions;
}

export interface EmbedOptions {
  /** L2-normalize each row (default true). */
  normalize?: boolean;
  /** Rows per forward pass (default 32 texts, 8 images). */
  batchSize?: number;
}

/** Already preprocessed pixels: [n, 3, S, S] NCHW float32 (mean/std normalized). */
export interface PixelTensor {
  data: Float32Array;
  /** number of images; defaults to data.length / (3 * S * S) */
  n?: number;
}

/** Preprocessed pixels, or images to decode and preprocess: paths, encoded bytes, raw pixels (one or many). */
export type ImageInput = PixelTensor | ImageSource | readonly ImageSource[];

export interface EmbedImageOptions extends EmbedOptions, PreprocessImageOptions {}

/** open_clip's zero-shot classifier: one unit vector per label. */
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

const MAX_TEXT_BATCH = 4096;

export class Clip {
  private model: BackendModel | undefined;

  private constructor(
    model: BackendModel,
    readonly arch: ClipArchitecture,
    readonly preprocess: PreprocessConfig,
    readonly tokenizer: ClipTokenizer,
    /** exp(logit_scale): the temperature CLIP's logits are scaled by. */
    readonly logitScale: number,
  ) {
    this.model = model;
  }

  /** `source`: a model directory, `{config, weights, vocabulary}` paths, or a Hugging Face repo name. */
  static async load(source: string | ModelPaths, options: ClipLoadOptions = {}): Promise<Clip> {
    const device = options.device ?? 'cpu';
    const precision = options.precision; // undefined: the backend's default (fp32; bf16 for wasm)
    const threads = options.threads ?? 0;
    if (device !== 'cpu' && device !== 'cuda') throw new ClipError('E_INVALID_ARGUMENT', `device must be 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
    if (precision !== undefined && precision !== 'fp32' && precision !== 'bf16') throw new ClipError('E_INVALID_ARGUMENT', `precision must be 'fp32' or 'bf16', got ${JSON.stringify(precision)}`);
    if (!Number.isInteger(threads) || threads < 0 || threads > 1024) throw new ClipError('E_INVALID_ARGUMENT', `threads must be an integer in 0..1024, got ${threads}`);

    // A model directory, explicit paths, or a Hugging Face name resolved through the shared cache.
    const description = await describeModel(typeof source === 'string' ? await resolveModel(source, options.hub) : source);
    const { files, arch, manifest } = description;
    if (!files.vocabulary) {
      throw new ClipError('E_NOT_FOUND', `no tokenizer vocabulary beside ${files.config} (vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz)`);
    }
    const tokenizer = await ClipTokenizer.load(files.vocabulary);
    const logitScale = Math.exp((await readTensor(manifest.tensors.get('logit_scale')!))[0]);
    const model = await loadWithBackend(options.backend ?? 'auto', arch, manifest, { device, precision, threads, onProgress: options.onProgress });
    return new Clip(model, arch, description.preprocess, tokenizer, logitScale);
  }

  get backend(): BackendName {
    return this.live().backend;
  }

  get precision(): Precision {
    return this.live().precision;
  }

  get device(): Device {
    return this.live().device;
  }

  get embedDim(): number {
    return this.arch.embedDim;
  }

  private live(): BackendModel {
    if (!this.model) throw new ClipError('E_DISPOSED', 'this model was disposed');
    return this.model;
  }

  /** Texts (tokenized here) or token ids ([n, contextLength] rows) -> [n, D]. */
  async embedTexts(texts: string | string[] | Int32Array | number[][], options: EmbedOptions = {}): Promise<Embeddings> {
    const ctx = this.arch.text.contextLength;
    const tokens = this.toTokens(texts);
    const n = tokens.length / ctx;
    const batchSize = batchSizeOf(options.batchSize, 32);
    // Sorting by length lets each batch stop at its own last end token (exact: attention is causal).
    const lengths = Array.from({ length: n }, (_, i) => endPosition(tokens.subarray(i * ctx, (i + 1) * ctx)));
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => lengths[a] - lengths[b]);
    const D = this.arch.embedDim;
    const out = new Float32Array(n * D);
    for (let start = 0; start < n; start += batchSize) {
      const rows = order.slice(start, start + batchSize);
      const batch = new Int32Array(rows.length * ctx);
      rows.forEach((r, i) => batch.set(tokens.subarray(r * ctx, (r + 1) * ctx), i * ctx));
      const { features } = await this.live().encodeText(batch, rows.length);
      rows.forEach((r, i) => out.set(features.subarray(i * D, (i + 1) * D), r * D));
    }
    const result = new Embeddings(out, n, D);
    return options.normalize === false ? result : result.normalized();
  }

  /** Images (files, encoded bytes, raw pixels) or preprocessed pixel tensors -> [n, D]. */
  async embedImages(images: ImageInput, options: EmbedImageOptions = {}): Promise<Embeddings> {
    const { data, n } = await this.toPixels(images, options);
    const per = 3 * this.arch.vision.imageSize ** 2;
    const batchSize = batchSizeOf(options.batchSize, 8);
    const D = this.arch.embedDim;
    const out = new Float32Array(n * D);
    for (let start = 0; start < n; start += batchSize) {
      const count = Math.min(batchSize, n - start);
      const { features } = await this.live().encodeImage(data.subarray(start * per, (start + count) * per), count);
      out.set(features, start * D);
    }
    const result = new Embeddings(out, n, D);
    return options.normalize === false ? result : result.normalized();
  }

  /** open_clip's build_zero_shot_classifier: per label, the renormalized mean of its normalized template embeddings. */
  async zeroShot(labels: string[], templates: string[] = DEFAULT_TEMPLATES): Promise<ZeroShotClassifier> {
    if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string')) {
      throw new ClipError('E_INVALID_ARGUMENT', 'labels must be a non-empty array of strings');
    }
    if (!Array.isArray(templates) || templates.length === 0 || !templates.every((t) => typeof t === 'string')) {
      throw new ClipError('E_INVALID_ARGUMENT', 'templates must be a non-empty array of strings');
    }
    const prompts = labels.flatMap((label) => templates.map((t) => (t.includes('{}') ? t.replaceAll('{}', label) : `${t} ${label}`)));
    const embeds = await this.embedTexts(prompts);
    const D = this.embedDim;
    const weights = new Float32Array(labels.length * D);
    for (let c = 0; c < labels.length; c++) {
      const w = weights.subarray(c * D, (c + 1) * D);
      for (let t = 0; t < templates.length; t++) {
        const row = embeds.row(c * templates.length + t);
        for (let k = 0; k < D; k++) w[k] += row[k] / templates.length;
      }
      normalizeInPlace(w);
    }
    return { labels: [...labels], weights: new Embeddings(weights, labels.length, D) };
  }

  /** Per image, labels ranked by softmax(logit_scale * cosine). */
  async classify(images: ImageInput, classifier: ZeroShotClassifier | string[], options: EmbedImageOptions = {}): Promise<LabelScore[][]> {
    const zs = Array.isArray(classifier) ? await this.zeroShot(classifier) : classifier;
    const imageEmbeds = await this.embedImages(images, options);
    const logits = matmulTransposed(imageEmbeds, zs.weights);
    const C = zs.labels.length;
    return Array.from({ length: imageEmbeds.rows }, (_, i) => {
      const probs = softmaxInPlace(logits.subarray(i * C, (i + 1) * C).map((x) => x * this.logitScale));
      return zs.labels.map((label, c) => ({ label, score: probs[c] })).sort((a, b) => b.score - a.score);
    });
  }

  dispose(): void {
    this.model?.dispose();
    this.model = undefined;
  }

  private toTokens(texts: string | string[] | Int32Array | number[][]): Int32Array {
    const ctx = this.arch.text.contextLength;
    const vocab = this.arch.text.vocabSize;
    let tokens: Int32Array;
    if (typeof texts === 'string' || (Array.isArray(texts) && texts.every((t) => typeof t === 'string'))) {
      const list = typeof texts === 'string' ? [texts] : (texts as string[]);
      if (list.length > MAX_TEXT_BATCH * 64) throw new ClipError('E_INPUT_TOO_LARGE', `at most ${MAX_TEXT_BATCH * 64} texts per call`);
      tokens = this.tokenizer.tokenize(list, ctx);
    } else if (texts instanceof Int32Array) {
      tokens = texts;
    } else if (Array.isArray(texts) && texts.every((r) => Array.isArray(r))) {
      tokens = new Int32Array(texts.length * ctx);
      texts.forEach((row, i) => {
        if (row.length > ctx) throw new ClipError('E_INVALID_ARGUMENT', `token row ${i} has ${row.length} ids, more than the context length ${ctx}`);
        tokens.set(row, i * ctx);
      });
    } else {
      throw new ClipError('E_INVALID_ARGUMENT', 'texts must be a string, an array of strings, an Int32Array of token ids or an array of id rows');
    }
    if (tokens.length === 0 || tokens.length % ctx !== 0) {
      throw new ClipError('E_INVALID_ARGUMENT', `token ids must be a non-empty multiple of the context length ${ctx}, got ${tokens.length}`);
    }
    for (let i = 0; i < tokens.length; i++) {
      if (!(tokens[i] >= 0 && tokens[i] < vocab)) throw new ClipError('E_INVALID_ARGUMENT', `token id ${tokens[i]} at position ${i} is outside the vocabulary 0..${vocab - 1}`);
    }
    return tokens;
  }

  private async toPixels(images: ImageInput, options: PreprocessImageOptions): Promise<{ data: Float32Array; n: number }> {
    const S = this.arch.vision.imageSize;
    const per = 3 * S * S;
    if (!isPixelTensor(images)) {
      const list = Array.isArray(images) ? (images as readonly ImageSource[]) : [images as ImageSource];
      if (list.length === 0) throw new ClipError('E_INVALID_ARGUMENT', 'no images given');
      return { data: await preprocessImages(list, this.preprocess, options), n: list.length };
    }
    const n = images.n ?? images.data.length / per;
    if (!Number.isInteger(n) || n <= 0 || images.data.length !== n * per) {
      throw new ClipError('E_INVALID_ARGUMENT', `pixel data has ${images.data.length} values; expected n x 3 x ${S} x ${S} with n >= 1`);
    }
    for (let i = 0; i < images.data.length; i++) {
      if (!Number.isFinite(images.data[i])) throw new ClipError('E_INVALID_ARGUMENT', `pixel value at index ${i} is not finite`);
    }
    return { data: images.data, n };
  }
}

function isPixelTensor(images: ImageInput): images is PixelTensor {
  return typeof images === 'object' && images !== null && !Array.isArray(images) && (images as PixelTensor).data instanceof Float32Array;
}

function batchSizeOf(v: number | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < 1 || v > MAX_TEXT_BATCH) throw new ClipError('E_INVALID_ARGUMENT', `batchSize must be an integer in 1..${MAX_TEXT_BATCH}`);
  return v;
}

/** Index of the first maximum id (the end token), as open_clip's argmax picks it. */
export function endPosition(row: Int32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
