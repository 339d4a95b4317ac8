/**
 * The libtorch backend: build-torch/Release/convnext_clip_torch.node (native/torch, built on demand with
 * `npm run build:torch`, never by `npm install`). CPU (fp32, or bf16 weights) and CUDA (bf16 or fp32, a stream
 * per model, CUDA graphs, fused kernels). Weights are read by the addon from the checkpoint files named in the
 * manifest; every load and inference runs off the JavaScript thread.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ClipArchitecture } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorDType, TensorManifest } from '../manifest.js';
import { AddonModel, type AddonModelHandle, addonError, checkLoadOptions, guardedProgress, selectTensors } from './addon-model.js';
import { loadRequestJson } from './load-request.js';
import { findPackageRoot } from './package-root.js';
import type { Backend, BackendLoadOptions, BackendModel, Device, ImagePreprocessor } from './types.js';

/** What the addon exports (native/torch/addon/addon.cc over native/napi). */
interface TorchAddon {
  /** `request`: the JSON of load-request.ts (native/core/spec.h), options.device included. */
  loadModel(request: string, onProgress?: (progress: { loadedBytes: number; totalBytes: number }) => void): Promise<TorchModelHandle>;
  cudaStatus(): { ok: true } | { ok: false; reason: string };
  torchVersion: string;
  cudaBuild: boolean;
  /** The core's preprocessing, linked into the torch addon (absent from older builds). */
  preprocessImage?: ImagePreprocessor;
}

interface TorchModelHandle extends AddonModelHandle {
  readonly disposed: boolean;
  readonly graphsCaptured: number;
}

const ADDON_FILE = 'convnext_clip_torch.node';
/** cmake-js builds into build-torch/ (node-gyp owns build/ and wipes it on rebuild) and copies to build/Release. */
const ADDON_DIRS = [path.join('build', 'Release'), path.join('build-torch', 'Release')];
const SUPPORTED_DTYPES = new Set<TensorDType>(['F32', 'F16', 'BF16', 'F64']);

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

/** The torch handle also counts the CUDA graphs it captured (one per batch-size bucket used). */
class TorchClipModel extends AddonModel<TorchModelHandle> {
  get graphsCaptured(): number {
    return this.handle?.graphsCaptured ?? 0;
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
    const threads = checkLoadOptions(options);
    const status = torchBackend.available(device);
    if (!status.ok) throw new ClipError('E_BACKEND_UNAVAILABLE', status.reason);
    const { addon } = loadAddon() as { addon: TorchAddon };
    const tensors = selectTensors(arch, manifest, SUPPORTED_DTYPES, 'torch');
    let handle: TorchModelHandle;
    try {
      const request = loadRequestJson({ architecture: arch, tensors, options: { device, precision, threads } });
      handle = await addon.loadModel(request, guardedProgress(options.onProgress));
    } catch (err) {
      throw addonError(err, 'loading the model failed');
    }
    // Its own preprocessing only: never the native addon's binary.
    const preprocess = typeof addon.preprocessImage === 'function' ? addon.preprocessImage.bind(addon) : undefined;
    return new TorchClipModel(handle, arch, 'torch', device, precision, preprocess);
  },
};
