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
   * text0.embed, text0.block<i> ([L, width], L = tokens actually computed).
   */
  intermediates?: Record<string, Float32Array>;
}

export interface BackendModel {
  readonly backend: BackendName;
  readonly device: Device;
  readonly precision: Precision;
  /** pixels: [n, 3, S, S] NCHW float32, already normalized. */
  encodeImage(pixels: Float32Array, n: number, options?: TowerOptions): Promise<TowerOutput>;
  /** tokens: [n, contextLength] row-major ids. */
  encodeText(tokens: Int32Array, n: number, options?: TowerOptions): Promise<TowerOutput>;
  dispose(): void;
}

export interface Backend {
  readonly name: BackendName;
  /** Whether this backend can run here (on `device`, when given); `reason` says why not. Cheap, never throws. */
  available(device?: Device): { ok: true } | { ok: false; reason: string };
  load(arch: ClipArchitecture, manifest: TensorManifest, options: BackendLoadOptions): Promise<BackendModel>;
}
