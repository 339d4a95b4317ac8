/** open_clip's preprocess_cfg with its defaults (no Node imports: the browser entry reads it too). */
import { ClipError } from './errors.js';

export const OPENAI_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

export interface PreprocessConfig {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  interpolation: 'bicubic' | 'bilinear';
  resizeMode: 'shortest' | 'longest' | 'squash';
  fillColor: number;
}

type Json = Record<string, unknown>;

function triple(v: unknown, fallback: [number, number, number], what: string): [number, number, number] {
  if (v === undefined || v === null) return fallback;
  const list = typeof v === 'number' ? [v, v, v] : v;
  if (!Array.isArray(list) || list.length !== 3 || !list.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    throw new ClipError('E_CONFIG', `preprocess_cfg.${what} must be 3 numbers, got ${JSON.stringify(v)}`);
  }
  return list as [number, number, number];
}

/** open_clip's PreprocessCfg with its defaults for missing keys. */
export function parsePreprocessConfig(cfg: unknown, imageSize: number): PreprocessConfig {
  const p = (typeof cfg === 'object' && cfg !== null ? cfg : {}) as Json;
  const size = Array.isArray(p.size) ? p.size[0] : (p.size ?? imageSize);
  if (typeof size !== 'number' || size !== imageSize) {
    throw new ClipError('E_CONFIG', `preprocess_cfg.size ${JSON.stringify(p.size)} does not match the tower's image_size ${imageSize}`);
  }
  const interpolation = p.interpolation ?? 'bicubic';
  if (interpolation !== 'bicubic' && interpolation !== 'bilinear') {
    throw new ClipError('E_CONFIG', `preprocess_cfg.interpolation ${JSON.stringify(interpolation)} is not supported (bicubic, bilinear)`);
  }
  const resizeMode = p.resize_mode ?? 'shortest';
  if (resizeMode !== 'shortest' && resizeMode !== 'longest' && resizeMode !== 'squash') {
    throw new ClipError('E_CONFIG', `preprocess_cfg.resize_mode ${JSON.stringify(resizeMode)} is not supported (shortest, longest, squash)`);
  }
  const std = triple(p.std, OPENAI_STD, 'std');
  if (std.some((s) => s <= 0)) throw new ClipError('E_CONFIG', 'preprocess_cfg.std must be positive');
  return {
    size: imageSize,
    mean: triple(p.mean, OPENAI_MEAN, 'mean'),
    std,
    interpolation,
    resizeMode,
    fillColor: typeof p.fill_color === 'number' ? p.fill_color : 0,
  };
}

