/**
 * The libtorch backend: build-torch/Release/convnext_clip_torch.node (native/torch, built on demand with
 * `npm run build:torch`, never by `npm install`). CPU (fp32, or bf16 weights) and CUDA (bf16 or fp32, a stream
 * per model, CUDA graphs, fused kernels). Weights are read by the addon from the checkpoint files named in the
 * manifest; every load and inference runs off the JavaScript thread.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { type ClipArchitecture, expectedTensors } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorEntry, TensorManifest } from '../manifest.js';
import { findPackageRoot } from './native.js';
import type { Backend, BackendLoadOptions, BackendModel, Device, Precision, TowerOptions, TowerOutput } from './types.js';

/** What the addon exports (native/torch/addon). */
interface TorchAddon {
  loadModel(
    arch: ClipArchitecture,
    tensors: TensorEntry[],
    options: { device: Device; precision: Precision; threads: number },
    onProgress?: (progress: { loadedBytes: number; totalBytes: number }) => void,
  ): Promise<TorchModelHandle>;
  cudaStatus(): { ok: true } | { ok: false; reason: string };
  torchVersion: string;
  cudaBuild: boolean;
}

interface TorchModelHandle {
  encodeImage(pixels: Float32Array, n: number, capture: boolean): Promise<TowerOutput>;
  encodeText(tokens: Int32Array, n: number, contextLength: number, capture: boolean): Promise<TowerOutput>;
  dispose(): void;
  readonly disposed: boolean;
  readonly weightBytes: number;
  readonly graphsCaptured: number;
}

const ADDON_FILE = 'convnext_clip_torch.node';
/** cmake-js builds into build-torch/ (node-gyp owns build/ and wipes it on rebuild) and copies to build/Release. */
const ADDON_DIRS = [path.join('build', 'Release'), path.join('build-torch', 'Release')];
const SUPPORTED_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const MAX_BATCH = 65536;

let cached: { addon: TorchAddon } | { error: string } | undefined;

function loadAddon(): { addon: TorchAddon } | { error: string } {
  if (cached) return cached;
  const override = process.env.CONVNEXT_CLIP_TORCH_ADDON;
  const root = findPackageRoot();
  const candidates = override ? [path.resolve(override)] : root ? ADDON_DIRS.map((d) => path.join(root, d, ADDON_FILE)) : [];
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    const where = candidates.length ? candidates.join(' or ') : 'the package root (not found)';
    cached = { error: `the torch addon is not built (no ${where}; install libtorch, e.g. apt-get install libtorch-dev, then run \`npm run build:torch\`)` };
    return cached;
  }
  try {
    cached = { addon: createRequire(import.meta.url)(file) as TorchAddon };
  } catch (err) {
    cached = { error: `cannot load the torch addon ${file}: ${(err as Error).message}` };
  }
  return cached;
}

function addonError(err: unknown, what: string): ClipError {
  if (err instanceof ClipError) return err;
  if ((err as { code?: unknown })?.code === 'E_DISPOSED') return new ClipError('E_DISPOSED', `${what}: the model has been disposed`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new ClipError('E_NATIVE', `${what}: ${message}`, { cause: err });
}

function checkBatch(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) throw new ClipError('E_INVALID_ARGUMENT', `${what}: n must be an integer in [1, ${MAX_BATCH}], got ${n}`);
}

/** The manifest entries the towers read, in load order; throws E_TENSOR_MISSING / E_TENSOR_SHAPE. */
function selectTensors(arch: ClipArchitecture, manifest: TensorManifest): TensorEntry[] {
  const out: TensorEntry[] = [];
  for (const [name, shape] of expectedTensors(arch)) {
    if (name === 'logit_scale') continue; // Clip's, not the towers'
    const entry = manifest.tensors.get(name);
    if (!entry) throw new ClipError('E_TENSOR_MISSING', `checkpoint lacks tensor ${name}`, { subject: name });
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has shape [${entry.shape}], expected [${shape}]`, { subject: name });
    }
    if (!SUPPORTED_DTYPES.has(entry.dtype)) {
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has dtype ${entry.dtype}; the torch backend reads F32, F16, BF16 and F64`, { subject: name });
    }
    out.push({ ...entry, shape: [...entry.shape], strides: [...entry.strides] });
  }
  return out;
}

class TorchClipModel implements BackendModel {
  readonly backend = 'torch' as const;
  private handle: TorchModelHandle | undefined;

  constructor(
    handle: TorchModelHandle,
    private readonly arch: ClipArchitecture,
    readonly device: Device,
    readonly precision: Precision,
  ) {
    this.handle = handle;
  }

  /** Bytes of weights held by the addon (0 once disposed). */
  get weightBytes(): number {
    return this.handle?.weightBytes ?? 0;
  }

  /** CUDA graphs captured so far (one per batch-size bucket used). */
  get graphsCaptured(): number {
    return this.handle?.graphsCaptured ?? 0;
  }

  private live(what: string): TorchModelHandle {
    if (!this.handle) throw new ClipError('E_DISPOSED', `${what}: the model has been disposed`);
    return this.handle;
  }

  async encodeImage(pixels: Float32Array, n: number, options: TowerOptions = {}): Promise<TowerOutput> {
    const handle = this.live('encodeImage');
    checkBatch(n, 'encodeImage');
    if (!(pixels instanceof Float32Array)) throw new ClipError('E_INVALID_ARGUMENT', 'encodeImage: pixels must be a Float32Array');
    const size = this.arch.vision.imageSize;
    const expected = n * 3 * size * size;
    if (pixels.length !== expected) {
      throw new ClipError('E_INVALID_ARGUMENT', `encodeImage: pixels hold ${pixels.length} floats; ${n} images of 3x${size}x${size} need ${expected}`);
    }
    try {
      return await handle.encodeImage(pixels, n, Boolean(options.capture));
    } catch (err) {
      throw addonError(err, 'encodeImage failed');
    }
  }

  async encodeText(tokens: Int32Array, n: number, options: TowerOptions = {}): Promise<TowerOutput> {
    const handle = this.live('encodeText');
    checkBatch(n, 'encodeText');
    if (!(tokens instanceof Int32Array)) throw new ClipError('E_INVALID_ARGUMENT', 'encodeText: tokens must be an Int32Array');
    const { contextLength, vocabSize } = this.arch.text;
    if (tokens.length !== n * contextLength) {
      throw new ClipError('E_INVALID_ARGUMENT', `encodeText: tokens hold ${tokens.length} ids; ${n} rows of ${contextLength} need ${n * contextLength}`);
    }
    for (let i = 0; i < tokens.length; i++) {
      if (tokens[i] < 0 || tokens[i] >= vocabSize) {
        throw new ClipError('E_INVALID_ARGUMENT', `encodeText: token id ${tokens[i]} at row ${Math.floor(i / contextLength)}, position ${i % contextLength} is outside the vocabulary [0, ${vocabSize})`);
      }
    }
    try {
      return await handle.encodeText(tokens, n, contextLength, Boolean(options.capture));
    } catch (err) {
      throw addonError(err, 'encodeText failed');
    }
  }

  dispose(): void {
    this.handle?.dispose();
    this.handle = undefined;
  }
}

export const torchBackend: Backend = {
  name: 'torch',

  /** Whether the addon is built and loads; for device 'cuda', also whether it has CUDA and sees a GPU. */
  available(device: Device = 'cpu') {
    const loaded = loadAddon();
    if (!('addon' in loaded)) return { ok: false, reason: loaded.error };
    if (device !== 'cuda') return { ok: true };
    try {
      const status = loaded.addon.cudaStatus();
      return status.ok ? { ok: true } : { ok: false, reason: `CUDA is not available: ${status.reason}` };
    } catch (err) {
      return { ok: false, reason: `CUDA is not available: ${(err as Error).message}` };
    }
  },

  async load(arch: ClipArchitecture, manifest: TensorManifest, options: BackendLoadOptions): Promise<BackendModel> {
    const { device, precision } = options;
    if (device !== 'cpu' && device !== 'cuda') throw new ClipError('E_INVALID_ARGUMENT', `device must be 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
    if (precision !== 'fp32' && precision !== 'bf16') throw new ClipError('E_INVALID_ARGUMENT', `precision must be 'fp32' or 'bf16', got ${JSON.stringify(precision)}`);
    const threads = options.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0 || threads > 1024) {
      throw new ClipError('E_INVALID_ARGUMENT', `threads must be an integer in [0, 1024] (0 = all cores), got ${threads}`);
    }
    const status = torchBackend.available(device);
    if (!status.ok) throw new ClipError('E_BACKEND_UNAVAILABLE', status.reason);
    const { addon } = loadAddon() as { addon: TorchAddon };
    const tensors = selectTensors(arch, manifest);
    const onProgress = options.onProgress;
    const progress = onProgress
      ? (p: { loadedBytes: number; totalBytes: number }) => {
          try {
            onProgress(p);
          } catch {
            // a throwing progress callback must not break the load
          }
        }
      : undefined;
    let handle: TorchModelHandle;
    try {
      handle = await addon.loadModel(arch, tensors, { device, precision, threads }, progress);
    } catch (err) {
      throw addonError(err, 'loading the model failed');
    }
    return new TorchClipModel(handle, arch, device, precision);
  },
};
