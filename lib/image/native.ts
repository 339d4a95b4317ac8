/** The native addon's image functions (native/napi/preprocess.h), from the addon addon-loader.ts finds. */
import { nativeAddonLoad } from '../backends/addon-loader.js';
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
  const loaded = nativeAddonLoad();
  if (!loaded.ok) throw new ClipError('E_BACKEND_UNAVAILABLE', `this preprocessing uses the native addon: ${loaded.message}`);
  const file = loaded.file;
  const addon = loaded.addon as Partial<NativeImageAddon>;
  if (typeof addon.preprocessImage !== 'function' || typeof addon.resizeImage !== 'function') {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `the native addon ${file} has no image preprocessing; rebuild it (\`npm run build:native\`)`);
  }
  cached = addon as NativeImageAddon;
  return cached;
}
