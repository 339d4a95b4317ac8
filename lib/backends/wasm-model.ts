/** The wasm BackendModel, shared by the Node backend (wasm.ts) and the browser entry (wasm-browser.ts). */
import { type ClipArchitecture, expectedTensors } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorEntry, TensorManifest } from '../manifest.js';
import type { BackendLoadOptions, BackendModel, Precision, TowerOptions, TowerOutput } from './types.js';
import { type CclipModuleFactory, type PreprocessImage, type PreprocessSpec, WasmRuntime, type WeightSource } from './wasm-core.js';

const SUPPORTED_DTYPES = new Set(['F32', 'F16', 'BF16']);
const MAX_BATCH = 65536;
/** One module's pthreads: the runner plus helpers (browsers cap Workers; so do memory and sense). */
export const MAX_WASM_THREADS = 64;

export function wasmError(err: unknown, what: string): ClipError {
  if (err instanceof ClipError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ClipError('E_NATIVE', `${what}: ${message}`, { cause: err });
}

/** The manifest entries the towers read, in load order; throws E_TENSOR_MISSING / E_TENSOR_SHAPE. */
export function selectTensors(arch: ClipArchitecture, manifest: TensorManifest): TensorEntry[] {
  const out: TensorEntry[] = [];
  for (const [name, shape] of expectedTensors(arch)) {
    if (name === 'logit_scale') continue; // Clip's, not the towers'
    const entry = manifest.tensors.get(name);
    if (!entry) throw new ClipError('E_TENSOR_MISSING', `checkpoint lacks tensor ${name}`, { subject: name });
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has shape [${entry.shape}], expected [${shape}]`, { subject: name });
    }
    if (!SUPPORTED_DTYPES.has(entry.dtype)) {
      throw new ClipError('E_TENSOR_SHAPE', `tensor ${name} has dtype ${entry.dtype}; the wasm backend reads F32, F16 and BF16`, { subject: name });
    }
    out.push(entry);
  }
  return out;
}

export function checkLoadOptions(options: BackendLoadOptions, hardwareThreads: number): { precision: Precision; threads: number } {
  if (options.device !== 'cpu') {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `the wasm backend runs on the CPU only (asked for device '${options.device}')`);
  }
  if (options.precision !== 'fp32' && options.precision !== 'bf16') {
    throw new ClipError('E_INVALID_ARGUMENT', `precision must be 'fp32' or 'bf16', got ${JSON.stringify(options.precision)}`);
  }
  const threads = options.threads ?? 0;
  if (!Number.isInteger(threads) || threads < 0 || threads > MAX_WASM_THREADS) {
    throw new ClipError('E_INVALID_ARGUMENT', `threads must be an integer in [0, ${MAX_WASM_THREADS}] (0 = all cores) for the wasm backend, got ${threads}`);
  }
  return { precision: options.precision, threads: threads || Math.max(1, Math.min(hardwareThreads, MAX_WASM_THREADS)) };
}

export interface WasmLoadRequest {
  factory: CclipModuleFactory;
  wasmModule: WebAssembly.Module;
  arch: ClipArchitecture;
  manifest: TensorManifest;
  /** A source for each file named in the manifest entries. */
  sources: Map<string, WeightSource>;
  precision: Precision;
  threads: number;
  onProgress?: BackendLoadOptions['onProgress'];
  locateFile?: (file: string, scriptDirectory: string) => string;
  mainScriptUrlOrBlob?: string | Blob;
  env?: Record<string, string>;
}

/** Starts a module with `threads` pthreads and streams the weights in. */
export async function loadWasmModel(req: WasmLoadRequest): Promise<WasmClipModel> {
  const tensors = selectTensors(req.arch, req.manifest);
  for (const e of tensors) {
    if (!req.sources.has(e.file)) throw new ClipError('E_INVALID_ARGUMENT', `no weight source given for ${e.file}`, { subject: e.file });
  }
  let runtime: WasmRuntime;
  try {
    runtime = await WasmRuntime.create({ factory: req.factory, wasmModule: req.wasmModule, threads: req.threads,
      locateFile: req.locateFile, mainScriptUrlOrBlob: req.mainScriptUrlOrBlob, env: req.env });
  } catch (err) {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `cannot start the wasm module: ${(err as Error)?.message ?? err}`, { cause: err });
  }
  const onProgress = req.onProgress;
  try {
    const handle = await runtime.load(req.arch, tensors, req.sources, req.precision, req.threads,
      onProgress ? (loadedBytes, totalBytes) => onProgress({ loadedBytes, totalBytes }) : undefined);
    return new WasmClipModel(runtime, handle, req.arch, req.precision, req.threads);
  } catch (err) {
    runtime.terminate();
    throw wasmError(err, 'loading the model failed');
  }
}

function checkBatch(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_BATCH) {
    throw new ClipError('E_INVALID_ARGUMENT', `${what}: n must be an integer in [1, ${MAX_BATCH}], got ${n}`);
  }
}

export class WasmClipModel implements BackendModel {
  readonly backend = 'wasm' as const;
  readonly device = 'cpu' as const;
  private runtime: WasmRuntime | undefined;

  constructor(
    runtime: WasmRuntime,
    private readonly handle: number,
    private readonly arch: ClipArchitecture,
    readonly precision: Precision,
    readonly threads: number,
  ) {
    this.runtime = runtime;
  }

  /** Bytes of packed weights in the heap (0 once disposed). */
  get weightBytes(): number {
    return this.runtime ? this.runtime.weightBytes(this.handle) : 0;
  }

  /** Bytes of wasm memory (its peak: it never shrinks); 0 once disposed. */
  get heapBytes(): number {
    return this.runtime?.memoryBytes ?? 0;
  }

  private live(what: string): WasmRuntime {
    if (!this.runtime) throw new ClipError('E_DISPOSED', `${what}: the model has been disposed`);
    return this.runtime;
  }

  async encodeImage(pixels: Float32Array, n: number, options: TowerOptions = {}): Promise<TowerOutput> {
    const runtime = this.live('encodeImage');
    checkBatch(n, 'encodeImage');
    if (!(pixels instanceof Float32Array)) throw new ClipError('E_INVALID_ARGUMENT', 'encodeImage: pixels must be a Float32Array');
    const size = this.arch.vision.imageSize;
    if (pixels.length !== n * 3 * size * size) {
      throw new ClipError('E_INVALID_ARGUMENT', `encodeImage: pixels hold ${pixels.length} floats; ${n} images of 3x${size}x${size} need ${n * 3 * size * size}`);
    }
    try {
      return await runtime.encodeImage(this.handle, pixels, n, Boolean(options.capture));
    } catch (err) {
      throw wasmError(err, 'encodeImage failed');
    }
  }

  async encodeText(tokens: Int32Array, n: number, options: TowerOptions = {}): Promise<TowerOutput> {
    const runtime = this.live('encodeText');
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
      return await runtime.encodeText(this.handle, tokens, n, contextLength, Boolean(options.capture));
    } catch (err) {
      throw wasmError(err, 'encodeText failed');
    }
  }

  /** open_clip's eval transform (native/core/preprocess) of 8-bit pixels into [3, size, size] floats, in the module. */
  async preprocess(image: PreprocessImage, spec: PreprocessSpec): Promise<Float32Array> {
    const runtime = this.live('preprocess');
    const { width, height, channels } = image;
    if (![width, height].every((d) => Number.isInteger(d) && d >= 1 && d <= 1 << 15) || ![1, 3, 4].includes(channels)) {
      throw new ClipError('E_INVALID_ARGUMENT', `preprocess: bad image geometry ${width}x${height}x${channels}`);
    }
    if (image.data.length !== width * height * channels) {
      throw new ClipError('E_INVALID_ARGUMENT', `preprocess: ${image.data.length} bytes for a ${width}x${height}x${channels} image`);
    }
    const wantChannels = { L: 1, RGB: 3, RGBA: 4, CMYK: 4 }[image.mode];
    if (wantChannels !== channels) throw new ClipError('E_INVALID_ARGUMENT', `preprocess: mode ${image.mode} needs ${wantChannels} channels, got ${channels}`);
    if (!Number.isInteger(spec.size) || spec.size < 1 || spec.size > 4096) throw new ClipError('E_INVALID_ARGUMENT', `preprocess: bad size ${spec.size}`);
    try {
      return await runtime.preprocess(image, spec);
    } catch (err) {
      throw wasmError(err, 'preprocess failed');
    }
  }

  /** Calls in flight finish first; then every pthread is terminated and the heap released. */
  dispose(): void {
    const runtime = this.runtime;
    this.runtime = undefined;
    if (!runtime) return;
    if (!runtime.busy) runtime.terminate();
    else void runtime.idle().then(() => runtime.terminate());
  }
}
