/** The native addon's image functions (native/napi/preprocess.h); $CONVNEXT_CLIP_ADDON overrides the path, `none` hides it. */
import { createRequire } from 'node:module';
import { nativeAddonFile } from '../backends/package-root.js';
import type { PreprocessSpec } from '../backends/types.js';
import { ClipError } from '../errors.js';
import type { PixelMode } from './types.js';

export type NativePreprocessSpec = PreprocessSpec;

export interface NativeImageAddon {
  /** Writes out [3, size, size]. */
  preprocessImage(pixels: Uint8Array, width: number, height: number, mode: PixelMode, spec: NativePreprocessSpec, out: Float32Array): Promise<void>;
  /** Pillow's Image.resize of raw 8-bit pixels (no premultiplication), -> [outHeight, outWidth, channels]. */
  resizeImage(pixels: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number, filter: NativePreprocessSpec['filter']): Promise<Uint8Array>;
}

let cached: NativeImageAddon | undefined;

/** Loads the addon once; E_BACKEND_UNAVAILABLE says why it cannot. */
export function imageAddon(): NativeImageAddon {
  if (cached) return cached;
  const found = nativeAddonFile();
  if ('error' in found) throw new ClipError('E_BACKEND_UNAVAILABLE', `this preprocessing uses the native addon: ${found.error}`);
  const file = found.file;
  let addon: Partial<NativeImageAddon>;
  try {
    addon = createRequire(import.meta.url)(file) as Partial<NativeImageAddon>;
  } catch (err) {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `cannot load the native addon ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof addon.preprocessImage !== 'function' || typeof addon.resizeImage !== 'function') {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `the native addon ${file} has no image preprocessing; rebuild it (\`npm run build:native\`)`);
  }
  cached = addon as NativeImageAddon;
  return cached;
}
