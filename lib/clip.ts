/**
 * The API users call: load a model directory, embed texts and images, build zero-shot classifiers.
 *
 *   const clip = await Clip.load(dir, { backend: 'auto', precision: 'bf16' });
 *   const texts = await clip.embedTexts(['a photo of a cat']);   // Embeddings [n, D], L2-normalized
 */
import path from 'node:path';
import type { ClipArchitecture } from './architecture.js';
import { BACKEND_NAMES, backendSelection, loadWithBackend } from './backends/index.js';
import type { BackendModel, BackendName, BackendSelection, Device, LoadProgress, Precision } from './backends/types.js';
import { readTensor } from './checkpoint/index.js';
import { Embeddings } from './embeddings.js';
import { ClipError } from './errors.js';
import { type ResolveOptions, resolveModel } from './hub/index.js';
import { type ImageSource, type PreprocessImageOptions, preprocessImages } from './image/index.js';
import { type ModelPaths, type PreprocessConfig, describeModel } from './model-dir.js';
import { ClipTokenizer } from './tokenizer/index.js';
import { finiteFloats, integerIn, invalid, is, mismatch, oneOf, optionalBool, optionalFunction, optionalIntegerIn, optionsObject, pathString, stringList, tokenRow } from './validate.js';
import { DEFAULT_TEMPLATES, type LabelScore, type ZeroShotClassifier, checkClassifier, classifierFrom, prompts, rank } from './zero-shot.js';

export { DEFAULT_TEMPLATES, type LabelScore, type ZeroShotClassifier } from './zero-shot.js';

export interface ClipLoadOptions {
  backend?: BackendName | 'auto';
  device?: Device;
  /** fp32 or bf16 weights; default fp32, except bf16 on the wasm backend (its heap is 4 GB). */
  precision?: Precision;
  /** Worker threads for CPU backends; 0 (default) uses every core. */
  threads?: number;
  onProgress?: (progress: LoadProgress) => void;
  /**
   * Native backend: a directory for packed-weights files. The first load of a checkpoint writes one (the size of
   * the weights in this precision); later loads map it instead of converting and packing, in a fraction of the
   * time, and processes that load the same model share its pages. A changed checkpoint gets a new file.
   */
  packedCache?: string;
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

const MAX_TEXT_BATCH = 4096;
/** |logit_scale| above ln(1000) is no trained CLIP's temperature (open_clip clamps it to ln(100)). */
const MAX_LOGIT_SCALE = Math.log(1000);

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
  static async load(source: string | ModelPaths, options?: ClipLoadOptions): Promise<Clip> {
    const checked = checkLoadOptions(options);
    if (!(typeof source === 'string' && source.length > 0) && !is.plainObject(source)) {
      throw invalid('a model directory, a Hugging Face name or {dir, config, weights, vocabulary} paths', 'source', source);
    }
    if (is.plainObject(source)) {
      for (const key of ['dir', 'config', 'weights'] as const) {
        if (source[key] !== undefined && !(typeof source[key] === 'string' && source[key].length > 0)) throw invalid('a path', `source.${key}`, source[key]);
      }
    }

    // A model directory, explicit paths, or a Hugging Face name resolved through the shared cache.
    const description = await describeModel(typeof source === 'string' ? await resolveModel(source, checked.hub) : source);
    const { files, arch, manifest } = description;
    if (!files.vocabulary) {
      throw new ClipError('E_NOT_FOUND', `no tokenizer vocabulary beside ${files.config} (vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz)`);
    }
    const tokenizer = await ClipTokenizer.load(files.vocabulary);
    const logitScale = await readLogitScale(manifest.tensors.get('logit_scale')!);
    const { backend, ...loadOptions } = checked;
    const model = await loadWithBackend(backend, arch, manifest, loadOptions);
    return new Clip(model, arch, description.preprocess, tokenizer, logitScale);
  }

  get backend(): BackendName {
    return this.live().backend;
  }

  /** Which backend was taken, from what (the native addon's file and source), and why the ones before it were not. */
  get backendSelection(): BackendSelection {
    const model = this.live();
    return backendSelection(model) ?? { backend: model.backend, skipped: [] };
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
  async embedTexts(texts: string | string[] | Int32Array | number[][], options?: EmbedOptions): Promise<Embeddings> {
    const { normalize, batchSize } = checkEmbedOptions(options, 32);
    const ctx = this.arch.text.contextLength;
    const tokens = this.toTokens(texts);
    const n = tokens.length / ctx;
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
    return normalize ? result.normalized() : result;
  }

  /**
   * Files, encoded bytes or raw pixels -> [n, 3, S, S] with this model's preprocess_cfg, by the loaded backend's
   * own preprocessing (sharp decodes; no other backend's binary is needed).
   */
  async preprocessImages(images: ImageSource | readonly ImageSource[], options?: PreprocessImageOptions): Promise<Float32Array> {
    this.live();
    if (images === undefined || images === null) throw invalid('an image or an array of images', 'images', images);
    const list = Array.isArray(images) ? (images as readonly ImageSource[]) : [images as ImageSource];
    return preprocessImages(list, this.preprocess, options, (...args) => this.live().preprocessImage(...args));
  }

  /** Images (files, encoded bytes, raw pixels) or preprocessed pixel tensors -> [n, D]. */
  async embedImages(images: ImageInput, options?: EmbedImageOptions): Promise<Embeddings> {
    const { normalize, batchSize } = checkEmbedOptions(options, 8);
    const { data, n } = await this.toPixels(images, options ?? {});
    const per = 3 * this.arch.vision.imageSize ** 2;
    const D = this.arch.embedDim;
    const out = new Float32Array(n * D);
    for (let start = 0; start < n; start += batchSize) {
      const count = Math.min(batchSize, n - start);
      const { features } = await this.live().encodeImage(data.subarray(start * per, (start + count) * per), count);
      out.set(features, start * D);
    }
    const result = new Embeddings(out, n, D);
    return normalize ? result.normalized() : result;
  }

  /** open_clip's build_zero_shot_classifier: per label, the renormalized mean of its normalized template embeddings. */
  async zeroShot(labels: string[], templates: string[] = DEFAULT_TEMPLATES): Promise<ZeroShotClassifier> {
    stringList(labels, 'labels');
    stringList(templates, 'templates');
    const embeds = await this.embedTexts(prompts(labels, templates));
    return classifierFrom(labels, templates.length, embeds.data, this.embedDim);
  }

  /** Per image, labels ranked by softmax(logit_scale * cosine). */
  async classify(images: ImageInput, classifier: ZeroShotClassifier | string[], options?: EmbedImageOptions): Promise<LabelScore[][]> {
    const zs = Array.isArray(classifier) ? await this.zeroShot(classifier) : checkClassifier(classifier, this.embedDim);
    const imageEmbeds = await this.embedImages(images, { ...optionsObject(options, 'options'), normalize: true });
    return Array.from({ length: imageEmbeds.rows }, (_, i) => rank(imageEmbeds.row(i), zs, this.logitScale));
  }

  dispose(): void {
    this.model?.dispose();
    this.model = undefined;
  }

  private toTokens(texts: string | string[] | Int32Array | number[][]): Int32Array {
    const ctx = this.arch.text.contextLength;
    const vocab = this.arch.text.vocabSize;
    let tokens: Int32Array;
    const kinds = 'a string, an array of strings, an Int32Array of token ids or an array of token id rows';
    if (Array.isArray(texts) && texts.length > MAX_TEXT_BATCH * 64) throw new ClipError('E_INPUT_TOO_LARGE', `at most ${MAX_TEXT_BATCH * 64} texts per call`);
    if (typeof texts === 'string' || (Array.isArray(texts) && texts.length > 0 && typeof texts[0] === 'string')) {
      const list = typeof texts === 'string' ? [texts] : stringList(texts, 'texts');
      tokens = this.tokenizer.tokenize(list, ctx);
    } else if (texts instanceof Int32Array) {
      for (let i = 0; i < texts.length; i++) {
        if (!(texts[i] >= 0 && texts[i] < vocab)) throw invalid(`an integer token id between 0 and ${vocab - 1}`, `texts[${i}]`, texts[i]);
      }
      tokens = texts;
    } else if (Array.isArray(texts) && texts.length > 0 && Array.isArray(texts[0])) {
      tokens = new Int32Array(texts.length * ctx);
      texts.forEach((row, i) => tokens.set(tokenRow(row, `texts[${i}]`, ctx, vocab), i * ctx));
    } else {
      throw invalid(kinds, 'texts', texts);
    }
    if (tokens.length === 0 || tokens.length % ctx !== 0) {
      throw mismatch(`a non-empty multiple of the context length ${ctx} token ids`, 'texts', `${tokens.length} ids`);
    }
    return tokens;
  }

  private async toPixels(images: ImageInput, options: PreprocessImageOptions): Promise<{ data: Float32Array; n: number }> {
    const S = this.arch.vision.imageSize;
    const per = 3 * S * S;
    if (!isPixelTensor(images)) {
      const list = Array.isArray(images) ? (images as readonly ImageSource[]) : [images as ImageSource];
      if (list.length === 0) throw invalid('at least one image', 'images', images);
      return { data: await this.preprocessImages(list, options), n: list.length };
    }
    const n = images.n ?? images.data.length / per;
    if (!Number.isInteger(n) || n <= 0 || images.data.length !== n * per) {
      throw mismatch(`n x 3 x ${S} x ${S} pixel values with n >= 1`, 'images.data', `${images.data.length} values${images.n === undefined ? '' : ` for n = ${images.n}`}`);
    }
    finiteFloats(images.data, 'images.data'); // the NaN policy: refused, typed, before any engine sees them
    return { data: images.data, n };
  }
}

function isPixelTensor(images: ImageInput): images is PixelTensor {
  return typeof images === 'object' && images !== null && !Array.isArray(images) && (images as PixelTensor).data instanceof Float32Array;
}

function checkEmbedOptions(options: EmbedOptions | undefined, defaultBatch: number): { normalize: boolean; batchSize: number } {
  const o = optionsObject(options, 'options');
  return { normalize: optionalBool(o.normalize, 'options.normalize') ?? true, batchSize: optionalIntegerIn(o.batchSize, 'options.batchSize', 1, MAX_TEXT_BATCH, defaultBatch) };
}

function checkLoadOptions(options: ClipLoadOptions | undefined) {
  const o = optionsObject(options, 'options');
  if (o.hub !== undefined && !is.plainObject(o.hub)) throw invalid('an options object', 'options.hub', o.hub);
  return {
    backend: o.backend === undefined ? ('auto' as const) : oneOf(o.backend, 'options.backend', ['auto', ...BACKEND_NAMES] as const),
    device: o.device === undefined ? ('cpu' as const) : oneOf(o.device, 'options.device', ['cpu', 'cuda'] as const),
    // undefined: the backend's default (fp32; bf16 for wasm)
    precision: o.precision === undefined ? undefined : oneOf(o.precision, 'options.precision', ['fp32', 'bf16'] as const),
    threads: o.threads === undefined ? 0 : integerIn(o.threads, 'options.threads', 0, 1024),
    onProgress: optionalFunction(o.onProgress, 'options.onProgress'),
    packedCache: o.packedCache === undefined ? undefined : path.resolve(pathString(o.packedCache, 'options.packedCache', 'a directory path')),
    hub: o.hub,
  };
}

/** exp(logit_scale), refused at load when it is not one number or not a plausible temperature. */
async function readLogitScale(entry: Parameters<typeof readTensor>[0]): Promise<number> {
  const values = await readTensor(entry);
  const raw = values[0];
  if (values.length !== 1 || !Number.isFinite(raw) || Math.abs(raw) > MAX_LOGIT_SCALE) {
    throw new ClipError('E_CHECKPOINT_CORRUPT', `logit_scale is ${values.length === 1 ? raw : `${values.length} values`}; expected one finite number with |logit_scale| <= ln(1000) (exp(logit_scale) is the softmax temperature)`, { subject: 'logit_scale' });
  }
  return Math.exp(raw);
}

/** Index of the first maximum id (the end token), as open_clip's argmax picks it. */
export function endPosition(row: Int32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
