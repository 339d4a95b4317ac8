/**
 * Runs in the page (bundled by test/browser-wasm.test.ts): loads a fixture model from the test server with the
 * browser entry of the wasm backend, embeds the expected pixels and tokens, and returns how close they came; and
 * decodes fixture photos with the page's own decoder and preprocesses them with the model's wasm module.
 */
import { bytesSource, loadClipInBrowser, preprocessInBrowser, readSafetensorsHeader, relaxedSimdSupported } from '../../lib/backends/wasm-browser.js';
import type { CclipModuleFactory } from '../../lib/backends/wasm-core.js';
import { maxRelativeDiff, minRowCosine } from '../helpers/compare.js';

export interface PageRequest {
  model: string;
  precision: 'fp32' | 'bf16';
  threads: number;
  /** How the page hands over the weights: a File (as from <input type=file>) or an ArrayBuffer. */
  via: 'file' | 'arraybuffer';
  /** The build to load from /wasm/; 'both': hand both URLs over and let the loader pick. */
  wasm: 'cclip.wasm' | 'cclip-relaxed.wasm' | 'both';
}

export interface PageResult {
  crossOriginIsolated: boolean;
  hardwareConcurrency: number;
  /** The build the model says it runs. */
  simd: 'relaxed' | 'simd128';
  loadMs: number;
  imageMs: number;
  textMs: number;
  /** max |got - want| / max |want| per tensor (features and captured intermediates). */
  rel: Record<string, number>;
  imageCos: number;
  textCos: number;
  progressEnd: boolean;
  /** A second image forward, of the pixels repeated until it takes >= ~200 ms (see LONG_FORWARD_MS). */
  longImageMs: number;
  /** 5 ms timer ticks the page's event loop ran during that forward. */
  ticksDuringLongImage: number;
}

/** How long the responsiveness forward should take, so that a free event loop has time to tick. */
const LONG_FORWARD_MS = 200;
/** At most 64 MB of repeated pixels. */
const MAX_LONG_FLOATS = 16 << 20;

/** Over the positions computed (text captures hold only L rows); nothing computed is NaN, never a pass. */
function maxRel(got: Float32Array, want: Float32Array): number {
  return got.length === 0 ? Number.NaN : maxRelativeDiff(got, want.subarray(0, got.length));
}

async function run(req: PageRequest): Promise<PageResult> {
  const base = `/fixtures/${req.model}`;
  const config = await (await fetch(`${base}/open_clip_config.json`)).json();
  const response = await fetch(`${base}/open_clip_model.safetensors`);
  const weights = req.via === 'file' ? new File([await response.blob()], 'open_clip_model.safetensors') : await response.arrayBuffer();

  const expectedBytes = await (await fetch(`${base}/expected.safetensors`)).arrayBuffer();
  const expectedManifest = await readSafetensorsHeader(bytesSource(expectedBytes), 'expected.safetensors');
  const tensor = (name: string) => {
    const e = expectedManifest.tensors.get(name);
    if (!e) throw new Error(`expected.safetensors lacks ${name}`);
    const bytes = expectedBytes.slice(e.offset, e.offset + e.byteLength);
    return { shape: e.shape, data: e.dtype === 'I64' ? Int32Array.from(new BigInt64Array(bytes), Number) : new Float32Array(bytes) };
  };

  let progressEnd = false;
  const t0 = performance.now();
  const clip = await loadClipInBrowser({
    factory: (globalThis as unknown as { createCclipModule: CclipModuleFactory }).createCclipModule,
    wasm: req.wasm === 'both' ? { relaxed: '/wasm/cclip-relaxed.wasm', simd128: '/wasm/cclip.wasm' } : `/wasm/${req.wasm}`,
    config, weights, precision: req.precision, threads: req.threads,
    onProgress: (p) => (progressEnd = p.loadedBytes === p.totalBytes),
  });
  const loadMs = performance.now() - t0;
  try {
    const pixels = tensor('pixels');
    const tokens = tensor('tokens');
    const capture = req.precision === 'fp32';
    const t1 = performance.now();
    const image = await clip.encodeImage(pixels.data as Float32Array, pixels.shape[0], { capture });
    const imageMs = performance.now() - t1;

    // The fixture forwards can take only milliseconds, too short to tell a blocked event loop from a free one: repeat
    // the pixels into one batch long enough that a free loop ticks many times, sized from a warm forward (the first
    // one pays one-time costs).
    const px = pixels.data as Float32Array;
    const batch = pixels.shape[0];
    const tWarm = performance.now();
    await clip.encodeImage(px, batch);
    const warmMs = performance.now() - tWarm;
    const repeats = Math.max(1, Math.min(Math.floor(MAX_LONG_FLOATS / px.length), Math.ceil(LONG_FORWARD_MS / Math.max(warmMs, 1))));
    const longPixels = new Float32Array(px.length * repeats);
    for (let i = 0; i < repeats; ++i) longPixels.set(px, i * px.length);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const tLong = performance.now();
    await clip.encodeImage(longPixels, batch * repeats);
    const longImageMs = performance.now() - tLong;
    clearInterval(timer);
    const t2 = performance.now();
    const text = await clip.encodeText(tokens.data as Int32Array, tokens.shape[0], { capture });
    const textMs = performance.now() - t2;

    const rel: Record<string, number> = {};
    const imageWant = tensor('image_features').data as Float32Array;
    const textWant = tensor('text_features').data as Float32Array;
    rel.image_features = maxRel(image.features, imageWant);
    rel.text_features = maxRel(text.features, textWant);
    for (const [name, got] of Object.entries({ ...image.intermediates, ...text.intermediates })) {
      if (expectedManifest.tensors.has(name)) rel[name] = maxRel(got, tensor(name).data as Float32Array);
    }
    const dim = image.features.length / pixels.shape[0];
    return {
      crossOriginIsolated, hardwareConcurrency: navigator.hardwareConcurrency, simd: clip.simd, loadMs, imageMs, textMs, rel,
      imageCos: minRowCosine(image.features, imageWant, dim), textCos: minRowCosine(text.features, textWant, dim),
      progressEnd, longImageMs, ticksDuringLongImage: ticks,
    };
  } finally {
    clip.dispose();
  }
}

/** The page's own decoder, then the model's wasm preprocessing: [3, S, S] per image, for the test to compare. */
async function preprocessImages(req: { model: string; images: string[] }): Promise<Record<string, number[]>> {
  const base = `/fixtures/${req.model}`;
  const config = await (await fetch(`${base}/open_clip_config.json`)).json();
  const weights = await (await fetch(`${base}/open_clip_model.safetensors`)).arrayBuffer();
  const clip = await loadClipInBrowser({
    factory: (globalThis as unknown as { createCclipModule: CclipModuleFactory }).createCclipModule,
    wasm: '/wasm/cclip.wasm', config, weights, threads: 1,
  });
  try {
    const out: Record<string, number[]> = {};
    for (const name of req.images) {
      const blob = await (await fetch(`/fixtures/images/${name}`)).blob();
      out[name] = Array.from(await preprocessInBrowser(clip, blob, config));
    }
    return out;
  } finally {
    clip.dispose();
  }
}

(globalThis as unknown as { runParity: typeof run; preprocessImages: typeof preprocessImages }).runParity = run;
(globalThis as unknown as { preprocessImages: typeof preprocessImages }).preprocessImages = preprocessImages;
(globalThis as unknown as { relaxedSimdSupported: typeof relaxedSimdSupported }).relaxedSimdSupported = relaxedSimdSupported;
document.title = 'ready';
