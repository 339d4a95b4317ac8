/**
 * The WebAssembly backend in Node: native/core built with Emscripten (wasm/prebuilt, committed; see
 * wasm/README.md), SIMD128 (relaxed SIMD's fused multiply-add where the engine has it) and pthreads, weights in a
 * heap of at most 4 GB (bf16 halves them: the full ConvNeXt-XXLarge fits in bf16 only). Each model gets its own module instance with `threads` pthreads; loads
 * and forwards run there, so this thread stays free. Weights are read with fs a few MB at a time straight
 * into the heap. After dispose() no worker keeps the process alive (idle models do not either).
 */
import { open, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { ClipArchitecture } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorManifest } from '../manifest.js';
import { checkPixelBuffers } from './addon-model.js';
import type { Backend, BackendLoadOptions, BackendModel, ImagePreprocessor } from './types.js';
import { wasmArtifacts } from './wasm-artifacts.js';
import { type CclipModuleFactory, preferredWasmSimd, relaxedSimdSupported, WASM_MODULE_FILES, WasmRuntime, type WasmSimd, type WeightSource } from './wasm-core.js';
import { checkLoadOptions, loadWasmModel, type WasmClipModel } from './wasm-model.js';

export { WasmClipModel } from './wasm-model.js';
export { blobSource, bytesSource, relaxedSimdSupported, type WasmSimd, type WeightSource } from './wasm-core.js';

interface Loaded {
  factory: CclipModuleFactory;
  wasmModule: WebAssembly.Module;
}

const compiled = new Map<WasmSimd, Promise<Loaded>>();

/** The V8 flag that turns relaxed SIMD on in Node 20 (Node 22+ has it on). */
export const RELAXED_SIMD_NODE_FLAG = '--experimental-wasm-relaxed-simd';

/** The Node flags a child process needs to run cclip-relaxed.wasm: none where this engine already runs it. */
export function relaxedSimdNodeFlags(): string[] {
  return relaxedSimdSupported() ? [] : [RELAXED_SIMD_NODE_FLAG];
}

/**
 * The build to load: CCLIP_WASM_SIMD=relaxed or simd128 picks one (relaxed where the engine has no relaxed SIMD is
 * an error); unset or auto: cclip-relaxed.wasm where the engine runs it, else cclip.wasm.
 */
export function wasmSimdChoice(): WasmSimd {
  const asked = process.env.CCLIP_WASM_SIMD;
  if (asked === undefined || asked === '' || asked === 'auto') return preferredWasmSimd();
  if (asked === 'simd128') return 'simd128';
  if (asked === 'relaxed') {
    if (relaxedSimdSupported()) return 'relaxed';
    throw new ClipError('E_BACKEND_UNAVAILABLE', `CCLIP_WASM_SIMD=relaxed, but this JavaScript runtime has no relaxed SIMD (Node ${process.versions.node}: Node 22+ has it; Node 20 with ${RELAXED_SIMD_NODE_FLAG})`);
  }
  throw new ClipError('E_INVALID_ARGUMENT', `CCLIP_WASM_SIMD must be auto, relaxed or simd128, got ${JSON.stringify(asked)}`, { subject: 'CCLIP_WASM_SIMD' });
}

/** Requires the glue and compiles the chosen module once per process. */
function loadModule(dir: string, simd: WasmSimd): Promise<Loaded> {
  let loading = compiled.get(simd);
  if (!loading) {
    loading = (async () => {
      const factory = createRequire(import.meta.url)(path.join(dir, 'cclip.js')) as CclipModuleFactory;
      const wasmModule = await WebAssembly.compile(await readFile(path.join(dir, WASM_MODULE_FILES[simd])));
      return { factory, wasmModule };
    })();
    compiled.set(simd, loading);
    loading.catch(() => compiled.delete(simd));
  }
  return loading;
}

function threadsSupported(): string | undefined {
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return 'this JavaScript runtime lacks SharedArrayBuffer/Atomics (wasm threads)';
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  } catch {
    return 'this JavaScript runtime cannot create shared WebAssembly memory (wasm threads)';
  }
  return undefined;
}

type FileHandle = Awaited<ReturnType<typeof open>>;

/** A checkpoint file read with positional reads straight into the heap view it is handed. */
async function fileSource(file: string): Promise<{ source: WeightSource; handle: FileHandle }> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw new ClipError('E_IO', `cannot open ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  const { size } = await handle.stat();
  const source: WeightSource = {
    size,
    async read(offset, into) {
      for (let done = 0; done < into.length; ) {
        const { bytesRead } = await handle.read(into, done, into.length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${file}: unexpected end of file at offset ${offset + done}`);
        done += bytesRead;
      }
    },
  };
  return { source, handle };
}

/**
 * Loads from caller-supplied weight sources instead of the manifest's files (`sources` maps each entry's `file`
 * to its bytes: bytesSource(buffer), blobSource(blob), or your own WeightSource).
 */
export async function loadWasmFromSources(
  arch: ClipArchitecture,
  manifest: TensorManifest,
  sources: Map<string, WeightSource>,
  options: BackendLoadOptions,
): Promise<WasmClipModel> {
  const artifacts = wasmArtifacts();
  if ('error' in artifacts) throw new ClipError('E_BACKEND_UNAVAILABLE', artifacts.error);
  const unsupported = threadsSupported();
  if (unsupported) throw new ClipError('E_BACKEND_UNAVAILABLE', unsupported);
  const { precision, threads } = checkLoadOptions(options, os.availableParallelism());
  const simd = wasmSimdChoice();
  let loaded: Loaded;
  try {
    loaded = await loadModule(artifacts.dir, simd);
  } catch (err) {
    throw new ClipError('E_BACKEND_UNAVAILABLE', `cannot load the wasm build in ${artifacts.dir}: ${(err as Error).message}`, { cause: err });
  }
  const env = process.env.CCLIP_PROFILE ? { CCLIP_PROFILE: process.env.CCLIP_PROFILE } : undefined;
  return loadWasmModel({ ...loaded, arch, manifest, sources, precision, threads, onProgress: options.onProgress, env });
}

let preprocessRuntime: Promise<WasmRuntime> | undefined;

/** The module's preprocessing without a model (one pthread, started on first use), for callers that have no model. */
export const wasmPreprocessor: ImagePreprocessor = async (data, width, height, mode, spec, out) => {
  checkPixelBuffers(data, width, height, mode, spec, out);
  preprocessRuntime ??= (async () => {
    const artifacts = wasmArtifacts();
    if ('error' in artifacts) throw new ClipError('E_BACKEND_UNAVAILABLE', artifacts.error);
    const unsupported = threadsSupported();
    if (unsupported) throw new ClipError('E_BACKEND_UNAVAILABLE', unsupported);
    // Preprocessing runs no GEMM, so either build does; the SIMD128 one needs no engine feature or setting.
    const { factory, wasmModule } = await loadModule(artifacts.dir, 'simd128');
    return WasmRuntime.create({ factory, wasmModule, threads: 1 });
  })();
  preprocessRuntime.catch(() => {
    preprocessRuntime = undefined;
  });
  const runtime = await preprocessRuntime;
  const fill: [number, number, number, number] = [0, 0, 0, 0];
  spec.fill.forEach((v, i) => (fill[i] = v));
  out.set(await runtime.preprocess({ data, width, height, channels: spec.fill.length, mode }, { ...spec, fill }));
};

export const wasmBackend: Backend = {
  name: 'wasm',

  available() {
    const artifacts = wasmArtifacts();
    if ('error' in artifacts) return { ok: false, reason: artifacts.error };
    const threads = threadsSupported();
    return threads ? { ok: false, reason: threads } : { ok: true };
  },

  async load(arch: ClipArchitecture, manifest: TensorManifest, options: BackendLoadOptions): Promise<BackendModel> {
    checkLoadOptions(options, 1); // argument errors before any file is opened
    const handles: FileHandle[] = [];
    try {
      const sources = new Map<string, WeightSource>();
      for (const file of new Set([...manifest.tensors.values()].map((e) => e.file))) {
        const { source, handle } = await fileSource(file);
        handles.push(handle);
        sources.set(file, source);
      }
      return await loadWasmFromSources(arch, manifest, sources, options);
    } finally {
      await Promise.all(handles.map((h) => h.close().catch(() => {})));
    }
  },
};
