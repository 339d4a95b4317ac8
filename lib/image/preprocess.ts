/**
 * open_clip's eval transform, identical to the Python reference: decode (Pillow's pixels), Resize in the
 * image's own mode (Pillow BICUBIC/BILINEAR, NEAREST for palette images), CenterCrop or pad, convert('RGB'),
 * ToTensor, Normalize. The pixel work runs in the engine handed in (a loaded model's own preprocessing; by
 * default the native addon's), off the JS thread; files decode concurrently.
 */
import { availableParallelism } from 'node:os';
import { ClipError } from '../errors.js';
import type { PreprocessConfig } from '../preprocess-config.js';
import { integerIn, invalid, is, oneOf, optionalBool, optionalIntegerIn, optionsObject } from '../validate.js';
import { decodeImage } from './decode.js';
import { preprocessSpecFor } from './spec.js';
import type { ImagePreprocessor } from '../backends/types.js';
import { wasmBackend, wasmPreprocessor } from '../backends/wasm.js';
import { imageAddon } from './native.js';
import { DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, type DecodedImage, type ImageSource, type PreprocessImageOptions } from './types.js';

function checkConfig(cfg: PreprocessConfig): void {
  if (!is.plainObject(cfg)) throw invalid('a preprocess config {size, mean, std, interpolation, resizeMode, fillColor}', 'config', cfg);
  integerIn(cfg.size, 'config.size', 1, 16384);
  oneOf(cfg.interpolation, 'config.interpolation', ['bicubic', 'bilinear'] as const);
  oneOf(cfg.resizeMode, 'config.resizeMode', ['shortest', 'longest', 'squash'] as const);
  for (const key of ['mean', 'std'] as const) {
    const v = cfg[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => is.finite(x) && (key === 'mean' || x > 0))) throw invalid(`3 finite numbers${key === 'std' ? ', each > 0' : ''}`, `config.${key}`, v);
  }
  if (!is.finite(cfg.fillColor)) throw invalid('a finite number', 'config.fillColor', cfg.fillColor);
}

function checkOptions(options: PreprocessImageOptions | undefined): { maxPixels: number; maxAspectRatio: number; concurrency: number; autoOrient: boolean } {
  const o = optionsObject(options, 'options');
  const maxAspectRatio = o.maxAspectRatio ?? DEFAULT_MAX_ASPECT_RATIO;
  if (!(typeof maxAspectRatio === 'number' && maxAspectRatio >= 1)) throw invalid('a number >= 1', 'options.maxAspectRatio', maxAspectRatio);
  return {
    maxPixels: optionalIntegerIn(o.maxPixels, 'options.maxPixels', 1, Number.MAX_SAFE_INTEGER, DEFAULT_MAX_PIXELS),
    maxAspectRatio,
    concurrency: optionalIntegerIn(o.concurrency, 'options.concurrency', 1, 256, Math.min(4, availableParallelism())),
    autoOrient: optionalBool(o.autoOrient, 'options.autoOrient') ?? false,
  };
}

/** The native addon's preprocessing (E_BACKEND_UNAVAILABLE without the addon). */
export const nativePreprocessor: ImagePreprocessor = (...args) => imageAddon().preprocessImage(...args);

/** For callers without a loaded model: the native addon's preprocessing, else the wasm module's (same floats). */
export const defaultPreprocessor: ImagePreprocessor = (...args) => (nativeUnavailable() === undefined ? nativePreprocessor(...args) : wasmPreprocessor(...args));

function nativeUnavailable(): string | undefined {
  try {
    imageAddon();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Preprocesses one decoded image into out [3, S, S] with `engine`. */
export async function transformDecoded(image: DecodedImage, cfg: PreprocessConfig, out: Float32Array, engine: ImagePreprocessor = defaultPreprocessor): Promise<void> {
  const spec = preprocessSpecFor(image, cfg);
  await engine(image.data, image.width, image.height, image.mode, spec, out);
}

/** Neither the native addon nor the wasm module: say why for both before decoding anything. */
function failEarlyWithoutEngine(): void {
  const native = nativeUnavailable();
  const wasm = wasmBackend.available();
  if (native !== undefined && !wasm.ok) throw new ClipError('E_BACKEND_UNAVAILABLE', `no image preprocessing here: ${native}; wasm: ${wasm.reason}`);
}

function labelOf(source: ImageSource, i: number): string {
  return typeof source === 'string' ? `input #${i} (${source})` : `input #${i}`;
}

/**
 * Images -> [n, 3, S, S] float32, as open_clip's eval transform makes them, by `engine` (default: the native
 * addon, else the wasm module; `Clip.preprocessImages` uses its model's own). A failing image rejects the whole batch with its
 * ClipError, which names it (`input #i`, and the path for files).
 */
export async function preprocessImages(
  inputs: readonly ImageSource[],
  cfg: PreprocessConfig,
  options?: PreprocessImageOptions,
  engine: ImagePreprocessor = defaultPreprocessor,
): Promise<Float32Array> {
  if (!Array.isArray(inputs)) throw invalid('an array of file paths, encoded images or raw pixels', 'images', inputs);
  checkConfig(cfg);
  const { maxPixels, maxAspectRatio, concurrency, autoOrient } = checkOptions(options);
  if (engine === defaultPreprocessor) failEarlyWithoutEngine();
  const per = 3 * cfg.size * cfg.size;
  const out = new Float32Array(inputs.length * per);
  let next = 0;
  const failures: { index: number; error: unknown }[] = [];
  const worker = async (): Promise<void> => {
    while (failures.length === 0 && next < inputs.length) {
      const i = next++;
      try {
        const image = await decodeImage(inputs[i], labelOf(inputs[i], i), { autoOrient, maxPixels, maxAspectRatio });
        await transformDecoded(image, cfg, out.subarray(i * per, (i + 1) * per), engine);
      } catch (error) {
        failures.push({ index: i, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, inputs.length) }, worker));
  if (failures.length > 0) {
    const { index, error } = failures.reduce((a, b) => (b.index < a.index ? b : a));
    if (error instanceof ClipError) throw error;
    throw new ClipError('E_NATIVE', `${labelOf(inputs[index], index)}: ${(error as Error)?.message ?? String(error)}`, { subject: labelOf(inputs[index], index), cause: error });
  }
  return out;
}

/** One image -> [3, S, S]. */
export async function preprocessImage(input: ImageSource, cfg: PreprocessConfig, options?: PreprocessImageOptions, engine?: ImagePreprocessor): Promise<Float32Array> {
  return preprocessImages([input], cfg, options, engine);
}
