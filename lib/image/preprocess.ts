/**
 * open_clip's eval transform, identical to the Python reference: decode (Pillow's pixels), Resize in the
 * image's own mode (Pillow BICUBIC/BILINEAR, NEAREST for palette images), CenterCrop or pad, convert('RGB'),
 * ToTensor, Normalize. The pixel work runs in the native addon off the JS thread; files decode concurrently.
 */
import { availableParallelism } from 'node:os';
import { ClipError } from '../errors.js';
import type { PreprocessConfig } from '../model-dir.js';
import { decodeImage } from './decode.js';
import { type NativePreprocessSpec, imageAddon } from './native.js';
import { DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, type DecodedImage, type ImageSource, type PreprocessImageOptions } from './types.js';

/** Padding colour in the decoded image's mode: Pillow pads with fill_color per channel (an index in mode P). */
function nativeFill(image: DecodedImage, fillColor: number): number[] {
  const f = Math.min(255, Math.max(0, Math.trunc(fillColor)));
  if (image.kind === 'palette' && image.paletteColor) {
    const rgb = image.paletteColor(f);
    return image.mode === 'RGBA' ? [...rgb, 255] : rgb;
  }
  if (image.kind === 'bilevel') return [f !== 0 ? 255 : 0];
  return new Array<number>(image.mode === 'L' ? 1 : image.mode === 'RGB' ? 3 : 4).fill(f);
}

function checkConfig(cfg: PreprocessConfig): void {
  if (!Number.isInteger(cfg.size) || cfg.size < 1 || cfg.size > 16384) throw new ClipError('E_INVALID_ARGUMENT', `preprocess size must be an integer in 1..16384, got ${cfg.size}`);
  if (cfg.interpolation !== 'bicubic' && cfg.interpolation !== 'bilinear') throw new ClipError('E_INVALID_ARGUMENT', `interpolation must be bicubic or bilinear, got ${cfg.interpolation}`);
  if (!['shortest', 'longest', 'squash'].includes(cfg.resizeMode)) throw new ClipError('E_INVALID_ARGUMENT', `resizeMode must be shortest, longest or squash, got ${cfg.resizeMode}`);
}

function checkOptions(options: PreprocessImageOptions): { maxPixels: number; maxAspectRatio: number; concurrency: number } {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(Number.isInteger(maxPixels) && maxPixels > 0)) throw new ClipError('E_INVALID_ARGUMENT', `maxPixels must be a positive integer, got ${maxPixels}`);
  const maxAspectRatio = options.maxAspectRatio ?? DEFAULT_MAX_ASPECT_RATIO;
  if (!(typeof maxAspectRatio === 'number' && maxAspectRatio >= 1)) throw new ClipError('E_INVALID_ARGUMENT', `maxAspectRatio must be a number >= 1, got ${maxAspectRatio}`);
  const concurrency = options.concurrency ?? Math.min(4, availableParallelism());
  if (!(Number.isInteger(concurrency) && concurrency > 0 && concurrency <= 256)) throw new ClipError('E_INVALID_ARGUMENT', `concurrency must be an integer in 1..256, got ${concurrency}`);
  return { maxPixels, maxAspectRatio, concurrency };
}

/** Preprocesses one decoded image into out [3, S, S]. */
export async function transformDecoded(image: DecodedImage, cfg: PreprocessConfig, out: Float32Array): Promise<void> {
  const spec: NativePreprocessSpec = {
    size: cfg.size,
    resizeMode: cfg.resizeMode,
    filter: image.kind === 'plain' ? cfg.interpolation : 'nearest',
    fill: nativeFill(image, cfg.fillColor),
    mean: cfg.mean,
    std: cfg.std,
  };
  await imageAddon().preprocessImage(image.data, image.width, image.height, image.mode, spec, out);
}

function labelOf(source: ImageSource, i: number): string {
  return typeof source === 'string' ? `input #${i} (${source})` : `input #${i}`;
}

/**
 * Images -> [n, 3, S, S] float32, as open_clip's eval transform makes them. A failing image rejects the
 * whole batch with its ClipError, which names it (`input #i`, and the path for files).
 */
export async function preprocessImages(inputs: readonly ImageSource[], cfg: PreprocessConfig, options: PreprocessImageOptions = {}): Promise<Float32Array> {
  if (!Array.isArray(inputs)) throw new ClipError('E_INVALID_ARGUMENT', 'images must be an array of file paths, encoded images or raw pixels');
  checkConfig(cfg);
  const { maxPixels, maxAspectRatio, concurrency } = checkOptions(options);
  imageAddon(); // fail early when the addon is missing
  const per = 3 * cfg.size * cfg.size;
  const out = new Float32Array(inputs.length * per);
  let next = 0;
  const failures: { index: number; error: unknown }[] = [];
  const worker = async (): Promise<void> => {
    while (failures.length === 0 && next < inputs.length) {
      const i = next++;
      try {
        const image = await decodeImage(inputs[i], labelOf(inputs[i], i), { autoOrient: options.autoOrient, maxPixels, maxAspectRatio });
        await transformDecoded(image, cfg, out.subarray(i * per, (i + 1) * per));
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
export async function preprocessImage(input: ImageSource, cfg: PreprocessConfig, options: PreprocessImageOptions = {}): Promise<Float32Array> {
  return preprocessImages([input], cfg, options);
}
