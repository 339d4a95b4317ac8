/**
 * The wasm backend in a browser page: the same wasm/prebuilt build, weights from a File, Blob or ArrayBuffer the
 * page supplies (streamed into the heap a chunk at a time). Threads need a cross-origin isolated page (serve it
 * with `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`).
 *
 *   <script src="/wasm/cclip.js"></script>   <!-- defines createCclipModule; cclip.worker.js sits beside it -->
 *   const clip = await loadClipInBrowser({ factory: createCclipModule, wasm: '/wasm/cclip.wasm',
 *     config: await (await fetch('open_clip_config.json')).json(), weights: fileInput.files[0] });
 *   const { features } = await clip.encodeImage(pixels, 1);
 */
import { type ClipArchitecture, parseModelConfig } from '../architecture.js';
import { ClipError } from '../errors.js';
import { invalid, is, oneOf, optionalIntegerIn } from '../validate.js';
import type { LoadProgress, Precision } from './types.js';
import { blobSource, bytesSource, type CclipModuleFactory, type WeightSource } from './wasm-core.js';
import { loadWasmModel, MAX_WASM_THREADS, type WasmClipModel } from './wasm-model.js';
import { readSafetensorsHeader } from '../checkpoint/safetensors-header.js';

export { blobSource, bytesSource, type WeightSource } from './wasm-core.js';
export { readSafetensorsHeader } from '../checkpoint/safetensors-header.js';
export type { WasmClipModel } from './wasm-model.js';

export interface BrowserLoadOptions {
  /** createCclipModule from cclip.js. */
  factory: CclipModuleFactory;
  /** cclip.wasm: its URL, its bytes, or a compiled module (compile once to load several models). */
  wasm: string | URL | ArrayBuffer | WebAssembly.Module;
  /** open_clip_config.json, parsed (or just its model_cfg). */
  config: unknown;
  /** open_clip_model.safetensors. */
  weights: Blob | ArrayBuffer | ArrayBufferView;
  /** Default 'bf16': half the heap (the full XXLarge fits only so). */
  precision?: Precision;
  /** Default navigator.hardwareConcurrency; 1 where the page is not cross-origin isolated is still threaded (1 worker). */
  threads?: number;
  onProgress?: (progress: LoadProgress) => void;
  locateFile?: (file: string, scriptDirectory: string) => string;
  mainScriptUrlOrBlob?: string | Blob;
}

async function compileWasm(wasm: BrowserLoadOptions['wasm']): Promise<WebAssembly.Module> {
  if (wasm instanceof WebAssembly.Module) return wasm;
  if (wasm instanceof ArrayBuffer) return WebAssembly.compile(wasm);
  const response = fetch(String(wasm));
  try {
    return await WebAssembly.compileStreaming(response);
  } catch {
    return WebAssembly.compile(await (await response).arrayBuffer()); // e.g. served without application/wasm
  }
}

export async function loadClipInBrowser(options: BrowserLoadOptions): Promise<WasmClipModel> {
  if (!is.plainObject(options)) throw invalid('an options object {factory, wasm, config, weights}', 'options', options);
  if (typeof SharedArrayBuffer !== 'function' || (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) {
    throw new ClipError('E_BACKEND_UNAVAILABLE', 'the wasm build needs threads: serve the page cross-origin isolated (COOP same-origin + COEP require-corp)');
  }
  const cfg = options.config as { model_cfg?: unknown } | null;
  const arch: ClipArchitecture = parseModelConfig(cfg && typeof cfg === 'object' && 'model_cfg' in cfg ? cfg.model_cfg : cfg);
  const name = typeof File !== 'undefined' && options.weights instanceof File ? options.weights.name : 'open_clip_model.safetensors';
  const source: WeightSource = options.weights instanceof Blob ? blobSource(options.weights) : bytesSource(options.weights);
  const manifest = await readSafetensorsHeader(source, name);
  const hardware = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency ?? 1;
  const threads = optionalIntegerIn(options.threads, 'options.threads', 1, MAX_WASM_THREADS, Math.max(1, Math.min(hardware, MAX_WASM_THREADS)));
  const precision = oneOf(options.precision ?? 'bf16', 'options.precision', ['fp32', 'bf16'] as const);
  const wasmModule = await compileWasm(options.wasm);
  return loadWasmModel({
    factory: options.factory, wasmModule, arch, manifest, sources: new Map([[name, source]]), precision, threads,
    onProgress: options.onProgress, locateFile: options.locateFile, mainScriptUrlOrBlob: options.mainScriptUrlOrBlob,
  });
}
