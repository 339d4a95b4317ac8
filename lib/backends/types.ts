/** One interface over every engine (native CPU addon, wasm, libtorch): what `Clip` needs from a backend. */
import type { ClipArchitecture } from '../architecture.js';
import type { TensorManifest } from '../manifest.js';

export type BackendName = 'native' | 'wasm' | 'torch';
export type Device = 'cpu' | 'cuda';
export type Precision = 'fp32' | 'bf16';

export interface LoadProgress {
  loadedBytes: number;
  totalBytes: number;
}

export interface BackendLoadOptions {
  precision: Precision;
  device: Device;
  /** Worker threads; 0 means all cores. */
  threads: number;
  onProgress?: (progress: LoadProgress) => void;
  /** Absolute directory of packed-weights files (native backend; the others ignore it). */
  packedCache?: string;
}

export interface TowerOptions {
  /** Also return intermediate activations of the first row (for parity tests and debugging). */
  capture?: boolean;
}

export interface TowerOutput {
  /** [n, embedDim] row-major, unnormalized tower output. */
  features: Float32Array;
  /**
   * With `capture`: image0.stem, image0.stage0..3 ([C, H, W]), image0.pooled ([C]);
   * text0.embed, text0.block<i> ([L, width]: L = text 0's end position + 1 on native and wasm, the batch's longest
   * such L on torch).
   */
  intermediates?: Record<string, Float32Array>;
}

/** Pillow's mode of decoded 8-bit pixels (LA is given as RGBA with R = G = B). */
export type PixelMode = 'L' | 'RGB' | 'RGBA' | 'CMYK';

/** open_clip's eval transform of one decoded image, as every backend's preprocessing takes it. */
export interface PreprocessSpec {
  size: number;
  resizeMode: 'shortest' | 'longest' | 'squash';
  filter: 'bicubic' | 'bilinear' | 'nearest';
  /** Padding colour in the image's own mode, one value per channel. */
  fill: number[];
  mean: [number, number, number];
  std: [number, number, number];
}

/** Decoded pixels [height, width, channels of `mode`] in, [3, size, size] normalized floats written to `out`. */
export type ImagePreprocessor = (pixels: Uint8Array, width: number, height: number, mode: PixelMode, spec: PreprocessSpec, out: Float32Array) => Promise<void>;

export interface BackendModel {
  readonly backend: BackendName;
  readonly device: Device;
  readonly precision: Precision;
  /** This backend's own open_clip eval transform (no other backend's binary is needed). */
  preprocessImage: ImagePreprocessor;
  /** pixels: [n, 3, S, S] NCHW float32, already normalized. */
  encodeImage(pixels: Float32Array, n: number, options?: TowerOptions): Promise<TowerOutput>;
  /** tokens: [n, contextLength] row-major ids. */
  encodeText(tokens: Int32Array, n: number, options?: TowerOptions): Promise<TowerOutput>;
  dispose(): void;
}

/** How a model's backend was chosen: the one taken, where its binary came from, why the ones before it were not. */
export interface BackendSelection {
  backend: BackendName;
  /** What the backend says about itself (the native addon's file and how the loader found it). */
  detail?: string;
  /** With `auto`: the backends tried first, each with the reason it was not taken. */
  skipped: Array<{ backend: BackendName; reason: string }>;
}

export interface Backend {
  readonly name: BackendName;
  /** One line on what this backend runs from (for BackendSelection.detail), when it has something to say. */
  describe?(): string | undefined;
  /** Whether this backend can run here (on `device`, when given); `reason` says why not. Cheap, never throws. */
  available(device?: Device): { ok: true } | { ok: false; reason: string };
  load(arch: ClipArchitecture, manifest: TensorManifest, options: BackendLoadOptions): Promise<BackendModel>;
}
