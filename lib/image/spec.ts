/** The engine's transform spec for one decoded image and a model's preprocess_cfg (no Node imports). */
import type { PreprocessSpec } from '../backends/types.js';
import type { PreprocessConfig } from '../preprocess-config.js';
import type { DecodedImage } from './types.js';

/** Padding colour in the decoded image's mode: Pillow pads with fill_color per channel (an index in mode P). */
function fillFor(image: Pick<DecodedImage, 'kind' | 'mode' | 'paletteColor'>, fillColor: number): number[] {
  const f = Math.min(255, Math.max(0, Math.trunc(fillColor)));
  if (image.kind === 'palette' && image.paletteColor) {
    const rgb = image.paletteColor(f);
    return image.mode === 'RGBA' ? [...rgb, 255] : rgb;
  }
  if (image.kind === 'bilevel') return [f !== 0 ? 255 : 0];
  return new Array<number>(image.mode === 'L' ? 1 : image.mode === 'RGB' ? 3 : 4).fill(f);
}

/** Pillow resizes palette and bilevel images with NEAREST, every other image with the model's filter. */
export function preprocessSpecFor(image: Pick<DecodedImage, 'kind' | 'mode' | 'paletteColor'>, cfg: PreprocessConfig): PreprocessSpec {
  return {
    size: cfg.size,
    resizeMode: cfg.resizeMode,
    filter: image.kind === 'plain' ? cfg.interpolation : 'nearest',
    fill: fillFor(image, cfg.fillColor),
    mean: cfg.mean,
    std: cfg.std,
  };
}
