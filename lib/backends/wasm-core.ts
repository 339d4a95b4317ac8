/**
 * Drives the Emscripten build of native/core (wasm/prebuilt/cclip.js) in Node and in browsers alike: one module
 * instance per model (its own heap and pthread pool), every load/forward a job on the module's runner pthread
 * (wasm/src/entry.cc) so this thread never blocks, weights streamed into the heap a chunk at a time from
 * WeightSources. No Node or DOM imports here.
 */
import type { ClipArchitecture } from '../architecture.js';
import type { TensorEntry } from '../manifest.js';
import { loadRequestJson } from './load-request.js';
import type { Precision } from './types.js';

/** A checkpoint file's bytes: a Node file handle, a browser File/Blob, an ArrayBuffer. */
export interface WeightSource {
  readonly size: number;
  /** Fills `into` with the bytes at [offset, offset + into.length) (`into` is a view of the wasm heap). */
  read(offset: number, into: Uint8Array): Promise<void>;
}

/** Bytes already in memory (a Node Buffer or an ArrayBuffer the page fetched). */
export function bytesSource(bytes: ArrayBuffer | ArrayBufferView): WeightSource {
  const all = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    size: all.length,
    async read(offset, into) {
      into.set(all.subarray(offset, offset + into.length));
    },
  };
}

/** A Blob or File (browser, or Node's Blob): each chunk is sliced and read on demand. */
export function blobSource(blob: Blob): WeightSource {
  return {
    size: blob.size,
    async read(offset, into) {
      into.set(new Uint8Array(await blob.slice(offset, offset + into.length).arrayBuffer()));
    },
  };
}

/** What createCclipModule() resolves to (the parts used here). */
interface CclipModule {
  _malloc(bytes: number): number;
  _free(ptr: number): void;
  _cclip_load(job: number, request: number): void;
  _cclip_encode_image(job: number, model: number, pixels: number, count: number, n: number, capture: number): void;
  _cclip_encode_text(job: number, model: number, tokens: number, count: number, n: number, ctx: number, capture: number): void;
  _cclip_free_model(job: number, model: number): void;
  _cclip_preprocess(job: number, data: number, w: number, h: number, c: number, mode: number, size: number, resize: number, filter: number, params: number): void;
  _cclip_result_error(r: number): number;
  _cclip_result_error_code(r: number): number;
  _cclip_result_model(r: number): number;
  _cclip_result_features(r: number): number;
  _cclip_result_features_size(r: number): number;
  _cclip_result_capture_count(r: number): number;
  _cclip_result_capture_name(r: number, i: number): number;
  _cclip_result_capture_data(r: number, i: number): number;
  _cclip_result_capture_size(r: number, i: number): number;
  _cclip_result_free(r: number): void;
  _cclip_weight_bytes(model: number): number;
  _cclip_heap_bytes(): number;
  _cclip_relaxed_simd(): number;
  UTF8ToString(ptr: number): string;
  stringToUTF8(text: string, ptr: number, maxBytes: number): void;
  lengthBytesUTF8(text: string): number;
  cclipMemory(): WebAssembly.Memory;
  cclipWorkers(): WorkerHandle[];
  cclipHost?: Host;
}

/** A pthread's Worker: Node worker_threads (ref/unref) or a web Worker. */
interface WorkerHandle {
  terminate(): unknown;
  ref?(): void;
  unref?(): void;
}

interface Host {
  read(source: number, dst: number, bytes: number, offset: number, statePtr: number, errorPtr: number): void;
  done(job: number, result: number): void;
  progress(job: number, loaded: number, total: number): void;
}

export type CclipModuleFactory = (options: Record<string, unknown>) => Promise<unknown>;

/**
 * The two builds of wasm/prebuilt: cclip.wasm (SIMD128: a multiply and an add per product) and cclip-relaxed.wasm
 * (relaxed SIMD's f32x4.relaxed_madd, one fused multiply-add where the CPU has one). Both take the same cclip.js.
 */
export type WasmSimd = 'relaxed' | 'simd128';
export const WASM_MODULE_FILES: Readonly<Record<WasmSimd, string>> = { relaxed: 'cclip-relaxed.wasm', simd128: 'cclip.wasm' };

// (func (param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2)))
const RELAXED_MADD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 8, 1, 0x60, 3, 0x7b, 0x7b, 0x7b, 1, 0x7b, 3, 2, 1, 0,
  10, 13, 1, 11, 0x00, 0x20, 0, 0x20, 1, 0x20, 2, 0xfd, 0x85, 0x02, 0x0b,
]);
let relaxedSupported: boolean | undefined;

/**
 * Whether this JavaScript engine runs relaxed SIMD (Chromium 114+, Firefox 120+, Node 22+; Node 20 with
 * --experimental-wasm-relaxed-simd), i.e. can use cclip-relaxed.wasm.
 */
export function relaxedSimdSupported(): boolean {
  relaxedSupported ??= typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_MADD_PROBE);
  return relaxedSupported;
}

/** The build to use here: cclip-relaxed.wasm where the engine has relaxed SIMD, else cclip.wasm. */
export function preferredWasmSimd(): WasmSimd {
  return relaxedSimdSupported() ? 'relaxed' : 'simd128';
}

export interface RuntimeOptions {
  factory: CclipModuleFactory;
  /** The compiled cclip.wasm (compile once with WebAssembly.compile, share between models). */
  wasmModule: WebAssembly.Module;
  /** Inference threads: the module starts this many pthreads (one runner that computes + threads - 1 helpers). */
  threads: number;
  /** Browser: where cclip.worker.js is (defaults to beside cclip.js). */
  locateFile?: (file: string, scriptDirectory: string) => string;
  /** Browser: the cclip.js URL or Blob, when the page did not load it with a <script> tag. */
  mainScriptUrlOrBlob?: string | Blob;
  /** Environment the core's getenv sees (CCLIP_PROFILE=1: per-op times on stderr / the console). */
  env?: Record<string, string>;
}

interface Job {
  resolve(result: number): void;
  reject(err: Error): void;
  onProgress?: (loaded: number, total: number) => void;
}

export interface RawOutput {
  features: Float32Array;
  intermediates?: Record<string, Float32Array>;
}

/** One module instance: its heap, its pthreads, its jobs. */
export class WasmRuntime {
  private readonly jobs = new Map<number, Job>();
  private nextJob = 1;
  private sources = new Map<number, { name: string; source: WeightSource }>();
  private terminated = false;
  private idleWaiters: Array<() => void> = [];

  private constructor(private readonly mod: CclipModule) {
    mod.cclipHost = {
      read: (source, dst, bytes, offset, statePtr, errorPtr) => void this.serveRead(source, dst, bytes, offset, statePtr, errorPtr),
      done: (job, result) => this.finish(job, result),
      progress: (job, loaded, total) => {
        try {
          this.jobs.get(job)?.onProgress?.(loaded, total);
        } catch {
          // a throwing progress callback must not break the load
        }
      },
    };
    this.setRef(false);
  }

  static async create(options: RuntimeOptions): Promise<WasmRuntime> {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new Error(`threads must be a positive integer, got ${options.threads}`);
    const mod = (await options.factory({
      cclipThreads: options.threads,
      instantiateWasm(imports: WebAssembly.Imports, receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) {
        WebAssembly.instantiate(options.wasmModule, imports).then((instance) => receive(instance, options.wasmModule));
        return {};
      },
      ...(options.locateFile ? { locateFile: options.locateFile } : {}),
      ...(options.mainScriptUrlOrBlob ? { mainScriptUrlOrBlob: options.mainScriptUrlOrBlob } : {}),
      ...(options.env ? { cclipEnv: options.env } : {}),
    })) as CclipModule;
    return new WasmRuntime(mod);
  }

  get busy(): boolean {
    return this.jobs.size > 0;
  }

  /** Which of the two builds this instance runs (asked of the module itself). */
  get simd(): WasmSimd {
    return this.mod._cclip_relaxed_simd() ? 'relaxed' : 'simd128';
  }

  /** Bytes of wasm memory: its current size is its peak (it never shrinks). */
  get memoryBytes(): number {
    return this.mod.cclipMemory().buffer.byteLength;
  }

  private heapU8(): Uint8Array {
    return new Uint8Array(this.mod.cclipMemory().buffer);
  }

  /** Node: keeps the process alive only while a job runs (so it can exit without dispose()). */
  private setRef(on: boolean): void {
    for (const w of this.mod.cclipWorkers()) (on ? w.ref : w.unref)?.call(w);
  }

  private submit(start: (job: number) => void, onProgress?: Job['onProgress']): Promise<number> {
    if (this.terminated) return Promise.reject(new Error('the wasm runtime has been terminated'));
    const job = this.nextJob++;
    return new Promise<number>((resolve, reject) => {
      this.jobs.set(job, { resolve, reject, onProgress });
      if (this.jobs.size === 1) this.setRef(true);
      try {
        start(job);
      } catch (err) {
        this.jobs.delete(job);
        reject(err as Error);
      }
    });
  }

  private finish(job: number, result: number): void {
    const entry = this.jobs.get(job);
    this.jobs.delete(job);
    if (this.jobs.size === 0) {
      if (!this.terminated) this.setRef(false);
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
    if (!entry) return void this.mod._cclip_result_free(result);
    const errorPtr = this.mod._cclip_result_error(result);
    if (errorPtr) {
      const error: Error & { code?: string } = new Error(this.mod.UTF8ToString(errorPtr));
      const codePtr = this.mod._cclip_result_error_code(result);
      if (codePtr) error.code = this.mod.UTF8ToString(codePtr);
      this.mod._cclip_result_free(result);
      entry.reject(error);
    } else {
      entry.resolve(result);
    }
  }

  private async serveRead(id: number, dst: number, bytes: number, offset: number, statePtr: number, errorPtr: number): Promise<void> {
    let state = 1;
    try {
      const entry = this.sources.get(id);
      if (!entry) throw new Error(`no weight source ${id}`);
      try {
        await entry.source.read(offset, new Uint8Array(this.mod.cclipMemory().buffer, dst, bytes));
      } catch (err) {
        throw new Error(`cannot read ${entry.name} (${bytes} bytes at ${offset}): ${(err as Error)?.message ?? err}`);
      }
    } catch (err) {
      state = 2;
      const message = (err as Error).message;
      const length = this.mod.lengthBytesUTF8(message) + 1;
      const ptr = this.mod._malloc(length) >>> 0;
      this.mod.stringToUTF8(message, ptr, length);
      new Uint32Array(this.mod.cclipMemory().buffer)[errorPtr >>> 2] = ptr;
    }
    if (this.terminated) return;
    const i32 = new Int32Array(this.mod.cclipMemory().buffer);
    Atomics.store(i32, statePtr >>> 2, state);
    Atomics.notify(i32, statePtr >>> 2);
  }

  private copyIn(data: ArrayBufferView): number {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const ptr = this.mod._malloc(Math.max(1, bytes.length)) >>> 0;
    if (!ptr) throw new Error(`out of wasm memory for a ${bytes.length}-byte input`);
    this.heapU8().set(bytes, ptr);
    return ptr;
  }

  private takeOutput(result: number, capture: boolean): RawOutput {
    const m = this.mod;
    try {
      const floats = (ptr: number, count: number) => new Float32Array(m.cclipMemory().buffer, ptr >>> 0, count).slice();
      const out: RawOutput = { features: floats(m._cclip_result_features(result), m._cclip_result_features_size(result)) };
      if (capture) {
        out.intermediates = {};
        for (let i = 0, n = m._cclip_result_capture_count(result); i < n; i++) {
          const name = m.UTF8ToString(m._cclip_result_capture_name(result, i));
          out.intermediates[name] = floats(m._cclip_result_capture_data(result, i), m._cclip_result_capture_size(result, i));
        }
      }
      return out;
    } finally {
      m._cclip_result_free(result);
    }
  }

  /** Loads the towers; resolves to the model handle. `files[i]` is the source of tensors whose file is files[i]. */
  async load(
    arch: ClipArchitecture,
    tensors: TensorEntry[],
    files: Map<string, WeightSource>,
    precision: Precision,
    threads: number,
    onProgress?: (loaded: number, total: number) => void,
  ): Promise<number> {
    // Source ids are the order of `sources` in the request (wasm/src/entry.cc cclip_load).
    this.sources = new Map();
    const sources: Array<{ file: string; size: number }> = [];
    for (const [file, source] of files) {
      this.sources.set(sources.length, { name: file, source });
      sources.push({ file, size: source.size });
    }
    for (const e of tensors) if (!files.has(e.file)) throw new Error(`no weight source for ${e.file}`);
    const request = loadRequestJson({ architecture: arch, tensors, options: { precision, threads }, sources });
    const length = this.mod.lengthBytesUTF8(request) + 1;
    const ptr = this.mod._malloc(length) >>> 0;
    this.mod.stringToUTF8(request, ptr, length);
    try {
      const result = await this.submit((job) => this.mod._cclip_load(job, ptr), onProgress);
      const model = this.mod._cclip_result_model(result) >>> 0;
      this.mod._cclip_result_free(result);
      return model;
    } finally {
      this.mod._free(ptr);
      this.sources = new Map();
    }
  }

  weightBytes(model: number): number {
    return this.mod._cclip_weight_bytes(model);
  }

  async encodeImage(model: number, pixels: Float32Array, n: number, capture: boolean): Promise<RawOutput> {
    const ptr = this.copyIn(pixels);
    try {
      const result = await this.submit((job) => this.mod._cclip_encode_image(job, model, ptr, pixels.length, n, capture ? 1 : 0));
      return this.takeOutput(result, capture);
    } finally {
      if (!this.terminated) this.mod._free(ptr);
    }
  }

  async encodeText(model: number, tokens: Int32Array, n: number, contextLength: number, capture: boolean): Promise<RawOutput> {
    const ptr = this.copyIn(tokens);
    try {
      const result = await this.submit((job) => this.mod._cclip_encode_text(job, model, ptr, tokens.length, n, contextLength, capture ? 1 : 0));
      return this.takeOutput(result, capture);
    } finally {
      if (!this.terminated) this.mod._free(ptr);
    }
  }

  /** open_clip's eval transform (see wasm/src/entry.cc cclip_preprocess for the codes). */
  async preprocess(image: PreprocessImage, spec: PreprocessSpec): Promise<Float32Array> {
    const data = this.copyIn(image.data);
    const params = this.copyIn(Float32Array.from([...(spec.fill ?? [0, 0, 0, 0]), ...spec.mean, ...spec.std]));
    const modes = { L: 0, RGB: 1, RGBA: 2, CMYK: 3 } as const;
    const resizes = { shortest: 0, longest: 1, squash: 2 } as const;
    const filters = { nearest: 0, bilinear: 1, bicubic: 2 } as const;
    try {
      const result = await this.submit((job) =>
        this.mod._cclip_preprocess(job, data, image.width, image.height, image.channels, modes[image.mode], spec.size,
          resizes[spec.resizeMode ?? 'shortest'], filters[spec.filter ?? 'bicubic'], params));
      return this.takeOutput(result, false).features;
    } finally {
      if (!this.terminated) {
        this.mod._free(data);
        this.mod._free(params);
      }
    }
  }

  /** Resolves once no job is queued or running. */
  idle(): Promise<void> {
    return this.jobs.size === 0 ? Promise.resolve() : new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops every pthread (the heap goes with the last reference to this object). */
  terminate(): void {
    if (this.terminated) return;
    this.terminated = true;
    for (const w of this.mod.cclipWorkers()) w.terminate();
    for (const [, job] of this.jobs) job.reject(new Error('the wasm runtime has been terminated'));
    this.jobs.clear();
    this.mod.cclipHost = undefined;
  }
}

export interface PreprocessImage {
  /** Interleaved 8-bit pixels [height, width, channels], rows packed. */
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  channels: number;
  /** Pillow mode: LA is given as RGBA with R = G = B. */
  mode: 'L' | 'RGB' | 'RGBA' | 'CMYK';
}

export interface PreprocessSpec {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  resizeMode?: 'shortest' | 'longest' | 'squash';
  filter?: 'nearest' | 'bilinear' | 'bicubic';
  fill?: [number, number, number, number];
}
