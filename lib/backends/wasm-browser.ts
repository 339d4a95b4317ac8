/**
 * The wasm backend in a browser page: the same wasm/prebuilt build, weights from a File, Blob or ArrayBuffer the
 * page supplies (streamed into the heap a chunk at a time). Threads need a cross-origin isolated page (serve it
 * with `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`).
 *
 *   <script src="/wasm/cclip.js"></script>   <!-- defines createCclipModule; cclip.worker.js sits beside it -->
 *   const clip = await loadClipInBrowser({ factory: createCclipModule,
 *     wasm: { relaxed: '/wasm/cclip-relaxed.wasm', simd128: '/wasm/cclip.wasm' },   // fetches the one this engine runs
 *     config: await (await fetch('open_clip_config.json')).json(), weights: fileInput.files[0] });
 *   const { features } = await clip.encodeImage(pixels, 1);
 *   const pixels = await preprocessInBrowser(clip, fileInput.files[1], config);   // the page decodes, the module preprocesses
 */
import { type ClipArchitecture, parseModelConfig } from '../architecture.js';
import { ClipError } from '../errors.js';
import { preprocessSpecFor } from '../image/spec.js';
import type { DecodedImage } from '../image/types.js';
import { parsePreprocessConfig } from '../preprocess-config.js';
import { invalid, is, oneOf, optionalIntegerIn } from '../validate.js';
import type { LoadProgress, Precision } from './types.js';
import { blobSource, bytesSource, type CclipModuleFactory, preferredWasmSimd, relaxedSimdSupported, type WeightSource } from './wasm-core.js';
import { loadWasmModel, MAX_WASM_THREADS, type WasmClipModel } from './wasm-model.js';
import { readSafetensorsHeader } from '../checkpoint/safetensors-header.js';

export { blobSource, bytesSource, relaxedSimdSupported, type WasmSimd, type WeightSource } from './wasm-core.js';
export { readSafetensorsHeader } from '../checkpoint/safetensors-header.js';
export type { WasmClipModel } from './wasm-model.js';

export interface BrowserLoadOptions {
  /** createCclipModule from cclip.js. */
  factory: CclipModuleFactory;
  /**
   * cclip.wasm or cclip-relaxed.wasm (where relaxedSimdSupported(): fused multiply-adds): its URL, its bytes, or a
   * compiled module (compile once to load several models); or both, `{ relaxed, simd128 }`, to have the one this
   * engine runs picked (only that one is fetched).
   */
  wasm: WasmInput | { relaxed: WasmInput; simd128: WasmInput };
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

type WasmInput = string | URL | ArrayBuffer | WebAssembly.Module;

async function compileWasm(choice: BrowserLoadOptions['wasm']): Promise<WebAssembly.Module> {
  const both = is.plainObject(choice) && 'relaxed' in choice && 'simd128' in choice;
  const wasm = both ? choice[preferredWasmSimd()] : (choice as WasmInput);
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
  let wasmModule: WebAssembly.Module;
  try {
    wasmModule = await compileWasm(options.wasm);
  } catch (err) {
    const hint = relaxedSimdSupported() ? '' : ' (this engine has no relaxed SIMD: load cclip.wasm, not cclip-relaxed.wasm; see relaxedSimdSupported())';
    throw new ClipError('E_BACKEND_UNAVAILABLE', `cannot compile the wasm module: ${(err as Error)?.message ?? err}${hint}`, { cause: err });
  }
  return loadWasmModel({
    factory: options.factory, wasmModule, arch, manifest, sources: new Map([[name, source]]), precision, threads,
    onProgress: options.onProgress, locateFile: options.locateFile, mainScriptUrlOrBlob: options.mainScriptUrlOrBlob,
  });
}

const DEFAULT_MAX_PIXELS = 100_000_000;

/**
 * Decodes with the page's own decoder (createImageBitmap, no colour conversion, unpremultiplied) into 8-bit RGBA.
 * Grayscale comes back as R = G = B (the resize gives the same values); palette images are not marked as such,
 * so they resize with the model's filter where Pillow would use NEAREST.
 */
export async function decodeImageInBrowser(source: Blob | ImageBitmap, options: { maxPixels?: number } = {}): Promise<DecodedImage> {
  const maxPixels = optionalIntegerIn(options.maxPixels, 'options.maxPixels', 1, Number.MAX_SAFE_INTEGER, DEFAULT_MAX_PIXELS);
  const isBitmap = typeof ImageBitmap !== 'undefined' && source instanceof ImageBitmap;
  if (!isBitmap && !(source instanceof Blob)) throw invalid('a Blob, File or ImageBitmap', 'source', source);
  let bitmap: ImageBitmap;
  try {
    bitmap = isBitmap ? (source as ImageBitmap) : await createImageBitmap(source as Blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (err) {
    throw new ClipError('E_IMAGE_DECODE', `the browser cannot decode this image (${(err as Error)?.message ?? err})`, { cause: err });
  }
  const { width, height } = bitmap;
  if (width * height > maxPixels) throw new ClipError('E_INPUT_TOO_LARGE', `${width}x${height} is more than the limit of ${maxPixels} pixels (option maxPixels)`);
  const context = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
  if (!context) throw new ClipError('E_IMAGE_DECODE', 'this browser has no 2d OffscreenCanvas');
  context.drawImage(bitmap, 0, 0);
  const { data } = context.getImageData(0, 0, width, height);
  if (!isBitmap) bitmap.close();
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width, height, mode: 'RGBA', kind: 'plain' };
}

/**
 * An image (encoded Blob/File, ImageBitmap, or already decoded) -> [3, S, S] with the preprocess_cfg of `config`
 * (open_clip_config.json, as given to loadClipInBrowser), by the model's own wasm preprocessing.
 */
export async function preprocessInBrowser(model: WasmClipModel, image: Blob | ImageBitmap | DecodedImage, config: unknown): Promise<Float32Array> {
  const cfg = config as { model_cfg?: unknown; preprocess_cfg?: unknown } | null;
  if (!is.plainObject(cfg)) throw invalid('open_clip_config.json, parsed', 'config', config);
  const arch = parseModelConfig('model_cfg' in cfg ? cfg.model_cfg : cfg);
  const preprocess = parsePreprocessConfig(cfg.preprocess_cfg, arch.vision.imageSize);
  const decoded = image instanceof Blob || (typeof ImageBitmap !== 'undefined' && image instanceof ImageBitmap) ? await decodeImageInBrowser(image) : (image as DecodedImage);
  const out = new Float32Array(3 * preprocess.size * preprocess.size);
  await model.preprocessImage(decoded.data, decoded.width, decoded.height, decoded.mode, preprocessSpecFor(decoded, preprocess), out);
  return out;
}
