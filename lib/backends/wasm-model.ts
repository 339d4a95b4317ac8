/** The wasm BackendModel, shared by the Node backend (wasm.ts) and the browser entry (wasm-browser.ts). */
import type { ClipArchitecture } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorDType, TensorManifest } from '../manifest.js';
import { integerIn, oneOf } from '../validate.js';
import { AddonModel, type AddonModelHandle, addonError, selectTensors } from './addon-model.js';
import type { BackendLoadOptions, Precision, TowerOutput } from './types.js';
import { type CclipModuleFactory, type PreprocessImage, type PreprocessSpec, WasmRuntime, type WasmSimd, type WeightSource } from './wasm-core.js';

const SUPPORTED_DTYPES = new Set<TensorDType>(['F32', 'F16', 'BF16']);
/** One module's pthreads: the runner plus helpers (browsers cap Workers; so do memory and sense). */
export const MAX_WASM_THREADS = 64;

export function checkLoadOptions(options: BackendLoadOptions, hardwareThreads: number): { precision: Precision; threads: number } {
  if (options.device !== 'cpu') {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `the wasm backend runs on the CPU only (asked for device '${options.device}')`);
  }
  const precision = oneOf(options.precision, 'options.precision', ['fp32', 'bf16'] as const);
  const threads = integerIn(options.threads ?? 0, 'options.threads of the wasm backend (0 = all cores)', 0, MAX_WASM_THREADS);
  return { precision, threads: threads || Math.max(1, Math.min(hardwareThreads, MAX_WASM_THREADS)) };
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
  const tensors = selectTensors(req.arch, req.manifest, SUPPORTED_DTYPES, 'wasm');
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
    return new WasmClipModel(new WasmModelHandle(runtime, handle), req.arch, req.precision, req.threads);
  } catch (err) {
    runtime.terminate();
    throw addonError(err, 'loading the model failed');
  }
}

/** A model's slot in its own wasm module, seen as an addon handle. */
class WasmModelHandle implements AddonModelHandle {
  constructor(
    readonly runtime: WasmRuntime,
    private readonly slot: number,
  ) {}

  get weightBytes(): number {
    return this.runtime.weightBytes(this.slot);
  }

  encodeImage(pixels: Float32Array, n: number, capture: boolean): Promise<TowerOutput> {
    return this.runtime.encodeImage(this.slot, pixels, n, capture);
  }

  encodeText(tokens: Int32Array, n: number, contextLength: number, capture: boolean): Promise<TowerOutput> {
    return this.runtime.encodeText(this.slot, tokens, n, contextLength, capture);
  }

  /** Calls in flight finish first; then every pthread is terminated and the heap released. */
  dispose(): void {
    const runtime = this.runtime;
    if (!runtime.busy) runtime.terminate();
    else void runtime.idle().then(() => runtime.terminate());
  }
}

/** The shared addon model (input checks, typed errors, dispose) plus the module's heap and preprocessing. */
export class WasmClipModel extends AddonModel<WasmModelHandle> {
  constructor(
    handle: WasmModelHandle,
    arch: ClipArchitecture,
    precision: Precision,
    readonly threads: number,
  ) {
    // The module's own preprocessing (native/core/preprocess compiled in): no native addon needed.
    super(handle, arch, 'wasm', 'cpu', precision, async (data, width, height, mode, spec, out) => {
      const fill: [number, number, number, number] = [0, 0, 0, 0];
      spec.fill.forEach((v, i) => (fill[i] = v));
      out.set(await handle.runtime.preprocess({ data, width, height, channels: spec.fill.length, mode }, { ...spec, fill }));
    });
    this.simd = handle.runtime.simd;
  }

  /** The build this model runs: 'relaxed' (cclip-relaxed.wasm, fused multiply-adds) or 'simd128' (cclip.wasm). */
  readonly simd: WasmSimd;

  /** Bytes of wasm memory (its peak: it never shrinks); 0 once disposed. */
  get heapBytes(): number {
    return this.handle?.runtime.memoryBytes ?? 0;
  }

  /**
   * open_clip's eval transform of 8-bit pixels into new [3, size, size] floats, in the module: preprocessImage
   * with the browser entry's defaults (shortest side, bicubic, black padding).
   */
  async preprocess(image: PreprocessImage, spec: PreprocessSpec): Promise<Float32Array> {
    const size = integerIn(spec?.size, 'spec.size', 1, 4096);
    const channels = integerIn(image?.channels, 'image.channels', 1, 4);
    const data = image.data instanceof Uint8ClampedArray ? new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.length) : image.data;
    const out = new Float32Array(3 * size * size);
    const fill = [...(spec.fill ?? [0, 0, 0, 0])].slice(0, channels);
    await this.preprocessImage(data, image.width, image.height, image.mode,
      { size, resizeMode: spec.resizeMode ?? 'shortest', filter: spec.filter ?? 'bicubic', fill, mean: spec.mean, std: spec.std }, out);
    return out;
  }
}
