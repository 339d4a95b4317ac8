/** The addon's image functions (native/node/preprocess_binding.h); $CONVNEXT_CLIP_ADDON overrides the path. */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipError } from '../errors.js';
import type { PixelMode } from './types.js';

export interface NativePreprocessSpec {
  size: number;
  resizeMode: 'shortest' | 'longest' | 'squash';
  filter: 'bicubic' | 'bilinear' | 'nearest';
  /** padding colour in the image's own mode, one value per channel */
  fill: number[];
  mean: [number, number, number];
  std: [number, number, number];
}

export interface NativeImageAddon {
  /** Writes out [3, size, size]. */
  preprocessImage(pixels: Uint8Array, width: number, height: number, mode: PixelMode, spec: NativePreprocessSpec, out: Float32Array): Promise<void>;
  /** Pillow's Image.resize of raw 8-bit pixels (no premultiplication), -> [outHeight, outWidth, channels]. */
  resizeImage(pixels: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number, filter: NativePreprocessSpec['filter']): Promise<Uint8Array>;
}

function packageRoot(): string | undefined {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    try {
      if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'convnext-clip') return dir;
    } catch {
      // not ours; keep walking up
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

let cached: NativeImageAddon | undefined;

/** Loads the addon once; E_BACKEND_UNAVAILABLE says why it cannot. */
export function imageAddon(): NativeImageAddon {
  if (cached) return cached;
  const root = packageRoot();
  const file = process.env.CONVNEXT_CLIP_ADDON ?? (root && path.join(root, 'build', 'Release', 'convnext_clip.node'));
  if (!file || !existsSync(file)) {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `image preprocessing needs the native addon, which is not built (${file ?? 'package root not found'}; run \`npm run build:native\`)`);
  }
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
