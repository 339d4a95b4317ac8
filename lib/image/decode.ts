/**
 * Decoding to the pixels Pillow gives: sharp (libvips) without colour management (Pillow ignores ICC
 * profiles), without EXIF rotation unless asked, and keeping the image's mode: grayscale stays one channel,
 * alpha stays, palette and bilevel images are marked so the resize uses NEAREST as Pillow's does.
 */
import sharp, { type SharpOptions } from 'sharp';
import { ClipError } from '../errors.js';
import { readRegularFile } from '../fs/read-file.js';
import { invalid, mismatch } from '../validate.js';
import { paletteLookup } from './palette.js';
import { DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, type DecodedImage, type ImageSource, type PixelMode, type RawImage } from './types.js';

/** Formats Pillow reads too; sharp's others (SVG, PDF, raw camera files, ...) are refused. */
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif']);

export interface DecodeOptions {
  autoOrient?: boolean;
  maxPixels?: number;
  /** Longer side / shorter side above this is refused from the header (default DEFAULT_MAX_ASPECT_RATIO). */
  maxAspectRatio?: number;
}

function isRawImage(v: unknown): v is RawImage {
  return typeof v === 'object' && v !== null && !(v instanceof Uint8Array) && 'data' in v && 'width' in v && 'height' in v;
}

function tooLarge(label: string, width: number, height: number, maxPixels: number): ClipError {
  return new ClipError('E_INPUT_TOO_LARGE', `${label}: ${width}x${height} is ${width * height} pixels, more than the limit of ${maxPixels} (option maxPixels)`, { subject: label });
}

function fromRaw(raw: RawImage, label: string, maxPixels: number, options: DecodeOptions): DecodedImage {
  const { data, width, height, channels } = raw;
  if (!(data instanceof Uint8Array || data instanceof Uint8ClampedArray)) throw invalid('a Uint8Array of 8-bit samples', `${label}: data`, data, label);
  if (!Number.isSafeInteger(width) || width < 1) throw invalid('a positive integer', `${label}: width`, width, label);
  if (!Number.isSafeInteger(height) || height < 1) throw invalid('a positive integer', `${label}: height`, height, label);
  if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) throw invalid('1, 2, 3 or 4', `${label}: channels`, channels, label);
  checkShape(label, width, height, { ...options, maxPixels });
  if (data.length !== width * height * channels) {
    throw mismatch(`${width}x${height}x${channels} = ${width * height * channels} bytes`, `${label}: data`, `${data.length} bytes`, label);
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.length);
  if (channels === 2) return { data: laToRgba(bytes), width, height, mode: 'RGBA', kind: 'plain' };
  const mode: PixelMode = channels === 1 ? 'L' : channels === 3 ? 'RGB' : 'RGBA';
  return { data: bytes, width, height, mode, kind: 'plain' };
}

/** Pillow resizes LA exactly as RGBA with R = G = B (both premultiplied, per channel). */
function laToRgba(la: Uint8Array): Uint8Array {
  const out = new Uint8Array((la.length / 2) * 4);
  for (let i = 0, o = 0; i < la.length; i += 2, o += 4) {
    out[o] = out[o + 1] = out[o + 2] = la[i];
    out[o + 3] = la[i + 1];
  }
  return out;
}

/**
 * The largest image file read: 8 bytes per allowed pixel (16-bit RGBA, uncompressed) plus 1 MiB of headers and
 * metadata, at most 1 GiB. A file cannot hold a decodable image within maxPixels and be larger by much.
 */
export function maxImageFileBytes(maxPixels: number): number {
  return Math.min(2 ** 30, 2 ** 20 + 8 * maxPixels);
}

/** The file's bytes; a FIFO, device or directory is refused without reading (E_IO), a huge file from its size. */
async function readBytes(file: string, label: string, maxPixels: number): Promise<Uint8Array> {
  try {
    return await readRegularFile(file, { what: 'image', maxBytes: maxImageFileBytes(maxPixels) });
  } catch (err) {
    if (!(err instanceof ClipError)) throw err;
    const message = err.code === 'E_NOT_FOUND' ? 'no such file' : err.message;
    throw new ClipError(err.code, `${label}: ${message}`, { subject: file, cause: err });
  }
}

/** Refuses extreme shapes from the header, before any pixel is decoded (1 x 30,000,000 would take ~25 s). */
function checkShape(label: string, width: number, height: number, options: DecodeOptions): void {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (width * height > maxPixels) throw tooLarge(label, width, height, maxPixels);
  const maxRatio = options.maxAspectRatio ?? DEFAULT_MAX_ASPECT_RATIO;
  const ratio = Math.max(width, height) / Math.min(width, height);
  if (ratio > maxRatio) {
    throw new ClipError('E_INPUT_TOO_LARGE', `${label}: ${width}x${height} has an aspect ratio of ${Math.round(ratio)}:1, over the limit of ${maxRatio}:1 (option maxAspectRatio)`, { subject: label });
  }
}

function decodeError(err: unknown, label: string, subject: string): ClipError {
  if (err instanceof ClipError) return err;
  const lines = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trim());
  const message = [...new Set(lines.filter((l) => l.length > 0))].join('; ');
  if (/pixel limit/i.test(message)) return new ClipError('E_INPUT_TOO_LARGE', `${label}: ${message}`, { subject, cause: err });
  return new ClipError('E_IMAGE_DECODE', `${label}: cannot decode the image (${message})`, { subject, cause: err });
}

async function decodeEncoded(bytes: Uint8Array, label: string, subject: string, options: DecodeOptions): Promise<DecodedImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (bytes.length === 0) throw new ClipError('E_IMAGE_DECODE', `${label}: empty image data`, { subject });
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // ignoreIcc: the raw decoded samples, as Pillow has them. failOn 'error': truncated data fails, harmless warnings don't.
  const sharpOptions: SharpOptions = { ignoreIcc: true, autoOrient: options.autoOrient === true, limitInputPixels: maxPixels, failOn: 'error', pages: 1, page: 0 };
  try {
    const meta = await sharp(input, sharpOptions).metadata();
    if (!FORMATS.has(meta.format)) throw new ClipError('E_IMAGE_DECODE', `${label}: unsupported image format ${meta.format}`, { subject });
    checkShape(label, meta.width, meta.height, options);

    let pipeline = sharp(input, sharpOptions);
    let kind: DecodedImage['kind'] = 'plain';
    let paletteColor: DecodedImage['paletteColor'];
    const gray = (meta.space === 'b-w' || meta.space === 'grey16') && !meta.hasAlpha;
    if (meta.space === 'cmyk') {
      pipeline = pipeline.pipelineColourspace('cmyk').toColourspace('cmyk');
    } else if (meta.isPalette) {
      kind = 'palette';
      paletteColor = paletteLookup(bytes);
    } else if (gray) {
      pipeline = pipeline.toColourspace('b-w');
      if (meta.format === 'png' && meta.bitsPerSample === 1) kind = 'bilevel';
    }
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const { width, height, channels } = info;
    if (width * height > maxPixels) throw tooLarge(label, width, height, maxPixels);
    let mode: PixelMode;
    let out: Uint8Array = pixels;
    if (meta.space === 'cmyk' && channels === 4) mode = 'CMYK';
    else if (channels === 1) mode = 'L';
    else if (channels === 2) {
      mode = 'RGBA';
      out = laToRgba(pixels);
    }
    else if (channels === 3) mode = 'RGB';
    else if (channels === 4) mode = 'RGBA';
    else throw new ClipError('E_IMAGE_DECODE', `${label}: ${channels} channels are not supported`, { subject });
    return { data: out, width, height, mode, kind, paletteColor };
  } catch (err) {
    throw decodeError(err, label, subject);
  }
}

/**
 * Decodes a file path, encoded bytes or raw pixels. `label` names the input in errors (a path or `input #i`).
 * Errors: E_NOT_FOUND, E_IO (not a regular file), E_IMAGE_DECODE, E_INPUT_TOO_LARGE (pixels, aspect ratio,
 * file size), E_INVALID_ARGUMENT.
 */
export async function decodeImage(source: ImageSource, label: string, options: DecodeOptions = {}): Promise<DecodedImage> {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (typeof source === 'string') return decodeEncoded(await readBytes(source, label, maxPixels), label, source, options);
  if (source instanceof Uint8Array) return decodeEncoded(source, label, label, options);
  if (isRawImage(source)) return fromRaw(source, label, maxPixels, options);
  throw invalid('a file path, a Buffer/Uint8Array of an encoded image or raw pixels {data, width, height, channels}', `${label}: image`, source, label);
}
