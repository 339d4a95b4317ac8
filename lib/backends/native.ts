/**
 * The native CPU backend: build/Release/convnext_clip.node (native/core + native/node). Weights are read by
 * the addon straight from the checkpoint files named in the manifest; every load and inference runs off the
 * JavaScript thread and returns a Promise.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ClipArchitecture, expectedTensors } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorEntry, TensorManifest } from '../manifest.js';
import type { Backend, BackendLoadOptions, BackendModel, Precision, TowerOptions, TowerOutput } from './types.js';

/** What the addon exports (native/node/addon.cc). */
interface NativeAddon {
  loadModel(
    arch: ClipArchitecture,
    tensors: TensorEntry[],
    options: { precision: Precision; threads: number },
    onProgress?: (progress: { loadedBytes: number; totalBytes: number }) => void,
  ): Promise<NativeModelHandle>;
  hardwareThreads: number;
}

interface NativeModelHandle {
  encodeImage(pixels: Float32Array, n: number, capture: boolean): Promise<TowerOutput>;
  encodeText(tokens: Int32Array, n: number, contextLength: number, capture: boolean): Promise<TowerOutput>;
  dispose(): void;
  readonly disposed: boolean;
  readonly weightBytes: number;
}

const PACKAGE_NAME = 'convnext-clip';
const ADDON_RELATIVE_PATH = path.join('build', 'Release', 'convnext_clip.node');
const SUPPORTED_DTYPES = new Set(['F32', 'F16', 'BF16']);
const MAX_BATCH = 65536;

/** The directory of the package.json named convnext-clip at or above this module. */
export function findPackageRoot(start: string = path.dirname(fileURLToPath(import.meta.url))): string | undefined {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME) return dir;
      } catch {
        // an unreadable package.json is not ours; keep walking up
      }
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

let cachedAddon: { addon: NativeAddon } | { error: string } | undefined;

function loadAddon(): { addon: NativeAddon } | { error: string } {
  if (cachedAddon) return cachedAddon;
  const root = findPackageRoot();
  if (!root) {
    cachedAddon = { error: `cannot find the ${PACKAGE_NAME} package root above ${fileURLToPath(import.meta.url)}` };
    return cachedAddon;
  }
  const file = path.join(root, ADDON_RELATIVE_PATH);
  if (!existsSync(file)) {
    cachedAddon = { error: `the native addon is not built (${file} is missing; run \`npm run build:native\`)` };
    return cachedAddon;
  }
  try {
    const require = createRequire(import.meta.url);
    cachedAddon = { addon: require(file) as NativeAddon };
  } catch (err) {
    cachedAddon = { error: `cannot load the native addon ${file}: ${(err as Error).message}` };
  }
  return cachedAddon;
}

function nativeError(err: unknown, what: string): ClipError {
  if (err instanceof ClipError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if ((err as { code?: unknown })?.code === 'E_DISPOSED') return new ClipError('E_DISPOSED', 'the model has been disposed', { cause: err });
  return new ClipError('E_NATIVE', `${what}: ${message}`, { cause: err });
}

function checkBatch(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) {
    throw new ClipError('E_INVALID_ARGUMENT', `${what}: n must be an integer in [1, ${MAX_BATCH}], got ${n}`);
  }
}

/** The manifest entries the architecture needs, in load order; throws E_TENSOR_MISSING / E_TENSOR_SHAPE. */
function selectTensors(arch: ClipArchitecture, manifest: TensorManifest): TensorEntry[] {
  const out: TensorEntry[] = [];
  for (const [name, shape] of expectedTensors(arch)) {
    if (name === 'logit_scale') continue; // used by Clip for logits, not by the towers
    const entry = manifest.tensors.get(name);
    if (!entry) throw new ClipError('E_TENSOR_MISSING', `checkpoint lacks tensor ${name}`, { subject: name });
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has shape [${entry.shape}], expected [${shape}]`, { subject: name });
    }
    if (!SUPPORTED_DTYPES.has(entry.dtype)) {
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has dtype ${entry.dtype}; the native backend reads F32, F16 and BF16`, { subject: name });
    }
    out.push({ ...entry, shape: [...entry.shape], strides: [...entry.strides] });
  }
  return out;
}

class NativeClipModel implements BackendModel {
  readonly backend = 'native' as const;
  readonly device = 'cpu' as const;
  private handle: NativeModelHandle | undefined;

  constructor(
    handle: NativeModelHandle,
    private readonly arch: ClipArchitecture,
    readonly precision: Precision,
  ) {
    this.handle = handle;
  }

  /** Bytes of packed weights held by the addon (0 once disposed). */
  get weightBytes(): number {
    return this.handle?.weightBytes ?? 0;
  }

  private live(what: string): NativeModelHandle {
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
      throw nativeError(err, 'encodeImage failed');
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
      const id = tokens[i];
      if (id < 0 || id >= vocabSize) {
        throw new ClipError('E_INVALID_ARGUMENT', `encodeText: token id ${id} at row ${Math.floor(i / contextLength)}, position ${i % contextLength} is outside the vocabulary [0, ${vocabSize})`);
      }
    }
    try {
      return await handle.encodeText(tokens, n, contextLength, Boolean(options.capture));
    } catch (err) {
      throw nativeError(err, 'encodeText failed');
    }
  }

  dispose(): void {
    this.handle?.dispose();
    this.handle = undefined;
  }
}

export const nativeBackend: Backend = {
  name: 'native',

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
    if (options.precision !== 'fp32' && options.precision !== 'bf16') {
      throw new ClipError('E_INVALID_ARGUMENT', `precision must be 'fp32' or 'bf16', got ${JSON.stringify(options.precision)}`);
    }
    const threads = options.threads ?? 0;
    if (!Number.isInteger(threads) || threads < 0 || threads > 1024) {
      throw new ClipError('E_INVALID_ARGUMENT', `threads must be an integer in [0, 1024] (0 = all cores), got ${threads}`);
    }
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
    let handle: NativeModelHandle;
    try {
      handle = await loaded.addon.loadModel(arch, tensors, { precision: options.precision, threads }, progress);
    } catch (err) {
      throw nativeError(err, 'loading the model failed');
    }
    return new NativeClipModel(handle, arch, options.precision);
  },
};
