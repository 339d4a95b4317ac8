/**
 * The native CPU backend: convnext_clip.node (native/core + native/napi + native/node), found by addon-loader.ts (a
 * local build or the prebuilt platform package). Weights are read by
 * the addon straight from the checkpoint files named in the manifest; every load and inference runs off the
 * JavaScript thread and returns a Promise.
 */
import type { ClipArchitecture } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorDType, TensorManifest } from '../manifest.js';
import { AddonModel, type AddonModelHandle, addonError, checkLoadOptions, guardedProgress, selectTensors } from './addon-model.js';
import { loadRequestJson } from './load-request.js';
import { nativeAddonLoad } from './addon-loader.js';
import type { Backend, BackendLoadOptions, BackendModel, ImagePreprocessor } from './types.js';

export { findPackageRoot } from './package-root.js';

/** What the addon exports (native/node/addon.cc). */
interface NativeAddon {
  /** `request`: the JSON of load-request.ts (native/core/spec.h). */
  loadModel(request: string, onProgress?: (progress: { loadedBytes: number; totalBytes: number }) => void): Promise<NativeModelHandle>;
  hardwareThreads: number;
  preprocessImage: ImagePreprocessor;
}

interface NativeModelHandle extends AddonModelHandle {
  readonly disposed: boolean;
}

const SUPPORTED_DTYPES = new Set<TensorDType>(['F32', 'F16', 'BF16']);

function loadAddon(): { addon: NativeAddon } | { error: string } {
  const loaded = nativeAddonLoad();
  return loaded.ok ? { addon: loaded.addon as unknown as NativeAddon } : { error: loaded.message };
}

export const nativeBackend: Backend = {
  name: 'native',

  describe() {
    const loaded = nativeAddonLoad();
    return loaded.ok ? `addon ${loaded.file} (${loaded.source})` : undefined;
  },

  available() {
    const loaded = loadAddon();
    return 'addon' in loaded ? { ok: true } : { ok: false, reason: loaded.error };
  },

  async load(arch: ClipArchitecture, manifest: TensorManifest, options: BackendLoadOptions): Promise<BackendModel> {
    if (options.device !== 'cpu') {
      throw new ClipError('E_BACKEND_UNAVAILABLE', `the native backend runs on the CPU only (asked for device '${options.device}')`);
    }
    const loaded = loadAddon();
    if (!('addon' in loaded)) throw new ClipError('E_BACKEND_UNAVAILABLE', loaded.error);
    const threads = checkLoadOptions(options);
    const tensors = selectTensors(arch, manifest, SUPPORTED_DTYPES, 'native');
    let handle: NativeModelHandle;
    try {
      const request = loadRequestJson({ architecture: arch, tensors, options: { precision: options.precision, threads, packedCache: options.packedCache } });
      handle = await loaded.addon.loadModel(request, guardedProgress(options.onProgress));
    } catch (err) {
      throw addonError(err, 'loading the model failed');
    }
    const addon = loaded.addon;
    return new AddonModel(handle, arch, 'native', 'cpu', options.precision, (...args) => addon.preprocessImage(...args));
  },
};
