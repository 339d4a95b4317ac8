/** What images can be given as, and the options of decoding and preprocessing. */

/** Raw 8-bit pixels, interleaved rows: [height, width, channels]. 1: gray, 2: gray + alpha, 3: RGB, 4: RGBA. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

/** A file path, the bytes of an encoded image (JPEG, PNG, WebP, GIF, TIFF, AVIF/HEIF) or raw pixels. */
export type ImageSource = string | Uint8Array | RawImage;

export interface PreprocessImageOptions {
  /** Rotate by the EXIF orientation first (default false: open_clip's Pillow pipeline does not). */
  autoOrient?: boolean;
  /** Images with more pixels are refused with E_INPUT_TOO_LARGE (default 100 megapixels). */
  maxPixels?: number;
  /**
   * Images whose longer side is more than this many times the shorter are refused with E_INPUT_TOO_LARGE,
   * from the header, before decoding (default 200). A 1 x 30,000,000 image would otherwise decode for ~25 s.
   */
  maxAspectRatio?: number;
  /** How many images are decoded and resized at once (default: min(4, cores)). */
  concurrency?: number;
}

export const DEFAULT_MAX_PIXELS = 100_000_000;

export const DEFAULT_MAX_ASPECT_RATIO = 200;

import type { PixelMode } from '../backends/types.js';

export type { PixelMode } from '../backends/types.js';

/** A decoded image in its own mode, with what Pillow would do differently for it. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  mode: PixelMode;
  /** Pillow resizes palette (P) and bilevel (1) images with NEAREST; they arrive here expanded. */
  kind: 'plain' | 'palette' | 'bilevel';
  /** Palette images: the RGB of a palette index (the padding colour `fill_color` is an index in mode P). */
  paletteColor?: (index: number) => [number, number, number];
}
