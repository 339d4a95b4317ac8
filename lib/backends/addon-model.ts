/**
 * What every addon-backed engine (native, torch, wasm) shares on the JavaScript side: finding the package,
 * checking load options and the manifest, validating inputs before they cross into C++, and the model wrapper
 * with dispose semantics. Each backend supplies only how to load its addon and its handle.
 * No Node imports here: the browser build of the wasm backend uses it too.
 */
import { type ClipArchitecture, expectedTensors } from '../architecture.js';
import { ClipError, type ClipErrorCode } from '../errors.js';
import { type TensorDType, type TensorEntry, type TensorManifest, WEIGHT_DTYPES } from '../manifest.js';
import { integerIn, invalid, mismatch, oneOf } from '../validate.js';
import type { BackendLoadOptions, BackendModel, BackendName, Device, ImagePreprocessor, LoadProgress, PixelMode, Precision, PreprocessSpec, TowerOptions, TowerOutput } from './types.js';

const MAX_BATCH = 65536;

/** Codes an engine gives its errors (native/core/spec.h cclip::Error, carried by native/napi and the wasm entry). */
const ENGINE_CODES = new Set<string>(['E_INVALID_ARGUMENT', 'E_CONFIG', 'E_TENSOR_MISSING', 'E_TENSOR_SHAPE', 'E_CHECKPOINT_CORRUPT', 'E_IO']);

/** An addon's failure as a ClipError (E_DISPOSED and the engine's own codes stay themselves, anything else is E_NATIVE). */
export function addonError(err: unknown, what: string): ClipError {
  if (err instanceof ClipError) return err;
  const code = (err as { code?: unknown })?.code;
  if (code === 'E_DISPOSED') return new ClipError('E_DISPOSED', `${what}: the model has been disposed`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && ENGINE_CODES.has(code)) return new ClipError(code as ClipErrorCode, `${what}: ${message}`, { cause: err });
  return new ClipError('E_NATIVE', `${what}: ${message}`, { cause: err });
}

/** Precision and threads as every engine takes them; returns the thread count (0 = all cores). */
export function checkLoadOptions(options: BackendLoadOptions): number {
  oneOf(options.precision, 'options.precision', ['fp32', 'bf16'] as const);
  return integerIn(options.threads ?? 0, 'options.threads (0 = all cores)', 0, 1024);
}

/** A progress callback that cannot break a load by throwing. */
export function guardedProgress(onProgress: ((p: LoadProgress) => void) | undefined): ((p: LoadProgress) => void) | undefined {
  if (!onProgress) return undefined;
  return (p) => {
    try {
      onProgress(p);
    } catch {
      // a throwing progress callback must not break the load
    }
  };
}

/** The manifest entries the towers read, in load order; throws E_TENSOR_MISSING / E_TENSOR_SHAPE. */
export function selectTensors(arch: ClipArchitecture, manifest: TensorManifest, dtypes: ReadonlySet<TensorDType>, backend: BackendName): TensorEntry[] {
  const out: TensorEntry[] = [];
  for (const [name, shape] of expectedTensors(arch)) {
    if (name === 'logit_scale') continue; // used by Clip for logits, not by the towers
    const entry = manifest.tensors.get(name);
    if (!entry) throw new ClipError('E_TENSOR_MISSING', `checkpoint lacks tensor ${name}`, { subject: name });
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has shape [${entry.shape}], expected [${shape}]`, { subject: name });
    }
    if (!dtypes.has(entry.dtype) || !WEIGHT_DTYPES.has(entry.dtype)) {
      const readable = [...dtypes].filter((d) => WEIGHT_DTYPES.has(d));
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has dtype ${entry.dtype}; the ${backend} backend reads ${readable.join(', ')}`, { subject: name });
    }
    out.push({ ...entry, shape: [...entry.shape], strides: [...entry.strides] });
  }
  return out;
}

/** A loaded model inside an addon. */
export interface AddonModelHandle {
  encodeImage(pixels: Float32Array, n: number, capture: boolean): Promise<TowerOutput>;
  encodeText(tokens: Int32Array, n: number, contextLength: number, capture: boolean): Promise<TowerOutput>;
  dispose(): void;
  readonly weightBytes: number;
}

function checkBatch(n: number, what: string): void {
  integerIn(n, `${what}: n`, 1, MAX_BATCH);
}

const MODE_CHANNELS: Record<PixelMode, number> = { L: 1, RGB: 3, RGBA: 4, CMYK: 4 };
const MAX_SIDE = 1 << 20;

/** What protects memory before pixels cross into an engine: buffer sizes that match the geometry and mode. */
export function checkPixelBuffers(pixels: Uint8Array, width: number, height: number, mode: PixelMode, spec: PreprocessSpec, out: Float32Array): void {
  const channels = MODE_CHANNELS[mode];
  const sideOk = (d: number) => Number.isInteger(d) && d >= 1 && d <= MAX_SIDE;
  if (!channels) throw invalid("one of 'L', 'RGB', 'RGBA', 'CMYK'", 'preprocessImage: mode', mode);
  if (!sideOk(width)) throw invalid(`an integer between 1 and ${MAX_SIDE}`, 'preprocessImage: width', width);
  if (!sideOk(height)) throw invalid(`an integer between 1 and ${MAX_SIDE}`, 'preprocessImage: height', height);
  if (!sideOk(spec?.size)) throw invalid(`an integer between 1 and ${MAX_SIDE}`, 'preprocessImage: spec.size', spec?.size);
  if (!(pixels instanceof Uint8Array) || pixels.length !== width * height * channels) {
    throw invalid(`a Uint8Array of ${width}x${height}x${channels} bytes`, 'preprocessImage: pixels', pixels);
  }
  if (!(out instanceof Float32Array) || out.length !== 3 * spec.size * spec.size) {
    throw invalid(`a Float32Array of 3x${spec.size}x${spec.size} values`, 'preprocessImage: out', out);
  }
  if (!Array.isArray(spec.fill) || spec.fill.length !== channels || !spec.fill.every((v) => Number.isFinite(v))) {
    throw invalid(`${channels} finite values (mode ${mode})`, 'preprocessImage: spec.fill', spec.fill);
  }
  // Engines convert these to floats and bytes: NaN must not reach a float-to-integer cast.
  for (const key of ['mean', 'std'] as const) {
    const v = spec[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => Number.isFinite(x) && (key === 'mean' || x > 0))) {
      throw invalid(`3 finite numbers${key === 'std' ? ', each > 0' : ''}`, `preprocessImage: spec.${key}`, v);
    }
  }
}

/** BackendModel over an addon handle: input checks in JS, typed errors, dispose semantics, its own preprocessing. */
export class AddonModel<H extends AddonModelHandle = AddonModelHandle> implements BackendModel {
  protected handle: H | undefined;

  constructor(
    handle: H,
    protected readonly arch: ClipArchitecture,
    readonly backend: BackendName,
    readonly device: Device,
    readonly precision: Precision,
    /** The engine's own image preprocessing; without one, preprocessImage is a typed E_BACKEND_UNAVAILABLE. */
    private readonly preprocessor?: ImagePreprocessor,
  ) {
    this.handle = handle;
  }

  readonly preprocessImage: ImagePreprocessor = async (pixels, width, height, mode, spec, out) => {
    this.live('preprocessImage');
    if (!this.preprocessor) {
      throw new ClipError('E_BACKEND_UNAVAILABLE', `the ${this.backend} backend's binary has no image preprocessing (rebuild it with preprocessImage), so it cannot embed images from files or bytes; pass preprocessed pixels instead`);
    }
    checkPixelBuffers(pixels, width, height, mode, spec, out);
    try {
      await this.preprocessor(pixels, width, height, mode, spec, out);
    } catch (err) {
      throw addonError(err, 'preprocessImage failed');
    }
  };

  /** Bytes of weights held by the addon (0 once disposed). */
  get weightBytes(): number {
    return this.handle?.weightBytes ?? 0;
  }

  protected live(what: string): H {
    if (!this.handle) throw new ClipError('E_DISPOSED', `${what}: the model has been disposed`);
    return this.handle;
  }

  async encodeImage(pixels: Float32Array, n: number, options: TowerOptions = {}): Promise<TowerOutput> {
    const handle = this.live('encodeImage');
    checkBatch(n, 'encodeImage');
    if (!(pixels instanceof Float32Array)) throw invalid('a Float32Array', 'encodeImage: pixels', pixels);
    const size = this.arch.vision.imageSize;
    const expected = n * 3 * size * size;
    if (pixels.length !== expected) {
      throw mismatch(`${expected} values (${n} images of 3x${size}x${size} need them)`, 'encodeImage: pixels', `${pixels.length}`);
    }
    try {
      return await handle.encodeImage(pixels, n, Boolean(options.capture));
    } catch (err) {
      throw addonError(err, 'encodeImage failed');
    }
  }

  async encodeText(tokens: Int32Array, n: number, options: TowerOptions = {}): Promise<TowerOutput> {
    const handle = this.live('encodeText');
    checkBatch(n, 'encodeText');
    if (!(tokens instanceof Int32Array)) throw invalid('an Int32Array', 'encodeText: tokens', tokens);
    const { contextLength, vocabSize } = this.arch.text;
    if (tokens.length !== n * contextLength) {
      throw mismatch(`${n * contextLength} ids (${n} rows of ${contextLength} need them)`, 'encodeText: tokens', `${tokens.length}`);
    }
    for (let i = 0; i < tokens.length; i++) {
      // Memory safety: the embedding lookup indexes by id.
      if (tokens[i] < 0 || tokens[i] >= vocabSize) {
        throw invalid(`a token id inside the vocabulary [0, ${vocabSize})`, `encodeText: tokens[${i}] (row ${Math.floor(i / contextLength)}, position ${i % contextLength})`, tokens[i]);
      }
    }
    try {
      return await handle.encodeText(tokens, n, contextLength, Boolean(options.capture));
    } catch (err) {
      throw addonError(err, 'encodeText failed');
    }
  }

  dispose(): void {
    this.handle?.dispose();
    this.handle = undefined;
  }
}
