/**
 * Native weight loading: F32/F16/BF16 sources, non-contiguous strides, progress, and clear errors for bad
 * manifests (missing, mis-shaped, truncated, unreadable tensors).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'tape';
import { nativeBackend } from '../lib/backends/native.js';
import type { BackendModel, LoadProgress } from '../lib/backends/types.js';
import { ClipError } from '../lib/errors.js';
import { type TensorDType, type TensorEntry, type TensorManifest, numel } from '../lib/manifest.js';
import { type FixtureModel, fixtureModel, minRowCosine } from './native-helpers.js';

const skip = !nativeBackend.available().ok;

const scratch = new Float32Array(1);
const scratchBits = new Uint32Array(scratch.buffer);

function toBf16(v: number): number {
  scratch[0] = v;
  const x = scratchBits[0];
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function fromBf16(h: number): number {
  scratchBits[0] = h << 16;
  return scratch[0];
}

function toF16(v: number): number {
  scratch[0] = v;
  const x = scratchBits[0];
  const sign = (x >>> 16) & 0x8000;
  const exponent = ((x >>> 23) & 0xff) - 127 + 15;
  let mantissa = x & 0x7fffff;
  if (exponent >= 0x1f) return sign | 0x7c00;
  if (exponent <= 0) {
    if (exponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - exponent;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (exponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

function fromF16(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? Number.NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

async function readF32(entry: TensorEntry): Promise<Float32Array> {
  const handle = await open(entry.file, 'r');
  try {
    const bytes = Buffer.alloc(entry.byteLength);
    await handle.read(bytes, 0, entry.byteLength, entry.offset);
    return new Float32Array(bytes.buffer, bytes.byteOffset, entry.byteLength / 4);
  } finally {
    await handle.close();
  }
}

/** Writes tensors into one raw file (no header: the manifest says where each lives). */
class RawWriter {
  private chunks: Buffer[] = [];
  private size = 0;
  readonly tensors = new Map<string, TensorEntry>();
  constructor(readonly file: string) {}

  add(name: string, dtype: TensorDType, shape: number[], strides: number[], bytes: Buffer, padding = 0): void {
    if (padding) this.push(Buffer.alloc(padding, 0xab));
    this.tensors.set(name, { name, dtype, shape, strides, file: this.file, offset: this.size, byteLength: bytes.length });
    this.push(bytes);
  }

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
  }

  finish(): TensorManifest {
    writeFileSync(this.file, Buffer.concat(this.chunks));
    return { format: 'safetensors', files: [this.file], tensors: this.tensors };
  }
}

/** Three copies of the fixture's weights, dtypes mixed per tensor: encoded contiguous, encoded with 2-D tensors
 * transposed in the file (strided), and the decoded values as contiguous F32. All three must load identically. */
async function mixedDtypeCopies(model: FixtureModel, dir: string) {
  const encoded = new RawWriter(path.join(dir, 'mixed.bin'));
  const strided = new RawWriter(path.join(dir, 'strided.bin'));
  const decoded = new RawWriter(path.join(dir, 'decoded.bin'));
  let index = 0;
  for (const entry of model.manifest.tensors.values()) {
    const values = await readF32(entry);
    const dtype: TensorDType = (['F32', 'F16', 'BF16'] as const)[index++ % 3];
    const itemsize = dtype === 'F32' ? 4 : 2;
    const codes = new Uint16Array(values.length);
    const back = new Float32Array(values.length);
    for (let i = 0; i < values.length; i++) {
      if (dtype === 'F32') back[i] = values[i];
      else if (dtype === 'BF16') back[i] = fromBf16((codes[i] = toBf16(values[i])));
      else back[i] = fromF16((codes[i] = toF16(values[i])));
    }
    const bytesOf = (order: number[]) => {
      const out = Buffer.alloc(order.length * itemsize);
      order.forEach((src, i) => (dtype === 'F32' ? out.writeFloatLE(values[src], i * 4) : out.writeUInt16LE(codes[src], i * 2)));
      return out;
    };
    const identity = Array.from(values, (_, i) => i);
    encoded.add(entry.name, dtype, entry.shape, entry.strides, bytesOf(identity));
    decoded.add(entry.name, 'F32', entry.shape, entry.strides, Buffer.from(back.buffer));
    if (entry.shape.length === 2 && entry.shape[0] > 1 && entry.shape[1] > 1) {
      const [rows, cols] = entry.shape;
      const transposed: number[] = []; // file holds [cols, rows]; element (r, c) at c * rows + r
      for (let c = 0; c < cols; c++) for (let r = 0; r < rows; r++) transposed.push(r * cols + c);
      strided.add(entry.name, dtype, entry.shape, [1, rows], bytesOf(transposed), 6);
    } else {
      strided.add(entry.name, dtype, entry.shape, entry.strides, bytesOf(identity), 2);
    }
  }
  return { encoded: encoded.finish(), strided: strided.finish(), decoded: decoded.finish() };
}

async function encodeBoth(native: BackendModel, model: FixtureModel) {
  const size = model.arch.vision.imageSize;
  const pixels = Float32Array.from({ length: 2 * 3 * size * size }, (_, i) => Math.sin(i * 0.37));
  const tokens = new Int32Array(2 * model.arch.text.contextLength);
  tokens.set([49406, 320, 1125, 539, 49407]);
  tokens.set([49406, 7, 49407], model.arch.text.contextLength);
  const image = await native.encodeImage(pixels, 2);
  const text = await native.encodeText(tokens, 2);
  return { image: image.features, text: text.features };
}

test('native loader: F16/BF16/F32 sources and strided tensors load exactly; progress reaches the total', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cclip-loader-'));
  try {
    const copies = await mixedDtypeCopies(model, dir);
    const load = async (manifest: TensorManifest, onProgress?: (p: LoadProgress) => void) =>
      nativeBackend.load(model.arch, manifest, { precision: 'fp32', device: 'cpu', threads: 2, onProgress });
    const progress: LoadProgress[] = [];
    const results = [];
    for (const manifest of [copies.decoded, copies.encoded, copies.strided, model.manifest]) {
      const native = await load(manifest, manifest === copies.strided ? (p) => progress.push(p) : undefined);
      results.push(await encodeBoth(native, model));
      native.dispose();
    }
    const [decoded, encoded, strided, original] = results;
    t.deepEqual(Array.from(encoded.image), Array.from(decoded.image), 'F16/BF16 sources decode exactly (image)');
    t.deepEqual(Array.from(encoded.text), Array.from(decoded.text), 'F16/BF16 sources decode exactly (text)');
    t.deepEqual(Array.from(strided.image), Array.from(decoded.image), 'transposed (strided) tensors gather exactly (image)');
    t.deepEqual(Array.from(strided.text), Array.from(decoded.text), 'transposed (strided) tensors gather exactly (text)');
    const cos = Math.min(minRowCosine(encoded.image, original.image, model.arch.embedDim), minRowCosine(encoded.text, original.text, model.arch.embedDim));
    t.ok(cos > 0.999, `half-precision sources stay close to the F32 originals (min cosine ${cos.toFixed(6)})`);

    const total = [...copies.strided.tensors.values()].filter((e) => e.name !== 'logit_scale').reduce((a, e) => a + e.byteLength, 0);
    t.ok(progress.length > 2, `progress reported ${progress.length} times`);
    t.ok(progress.every((p, i) => p.totalBytes === total && (i === 0 || p.loadedBytes >= progress[i - 1].loadedBytes)), 'progress is monotonic against a fixed total');
    t.equal(progress.at(-1)?.loadedBytes, total, 'progress ends at the total');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function loadError(t: test.Test, model: FixtureModel, tensors: Map<string, TensorEntry>, code: string, pattern: RegExp, what: string, device: 'cpu' | 'cuda' = 'cpu') {
  try {
    const native = await nativeBackend.load(model.arch, { format: 'safetensors', files: [], tensors }, { precision: 'fp32', device, threads: 1 });
    native.dispose();
    t.fail(`${what}: loaded`);
  } catch (err) {
    t.ok(err instanceof ClipError && err.code === code, `${what}: ${(err as ClipError).code} ${(err as Error).message}`);
    t.match((err as Error).message, pattern, `${what}: message says why`);
  }
}

test('native loader: bad manifests are clear errors', { skip }, async (t) => {
  const model = await fixtureModel('xxlarge-tiny');
  const base = model.manifest.tensors;
  const edit = (name: string, change: Partial<TensorEntry> | null) => {
    const out = new Map(base);
    if (change === null) out.delete(name);
    else out.set(name, { ...base.get(name)!, ...change });
    return out;
  };
  const name = 'visual.trunk.stages.1.blocks.0.mlp.fc1.weight';
  const entry = base.get(name)!;
  await loadError(t, model, edit(name, null), 'E_TENSOR_MISSING', /lacks tensor/, 'a missing tensor');
  await loadError(t, model, edit(name, { shape: [entry.shape[1], entry.shape[0]] }), 'E_TENSOR_SHAPE', /shape/, 'a mis-shaped tensor');
  await loadError(t, model, edit(name, { dtype: 'I64' }), 'E_TENSOR_SHAPE', /dtype/, 'an integer tensor');
  await loadError(t, model, edit(name, { offset: entry.offset + 1e9 }), 'E_CHECKPOINT_CORRUPT', /past the end/, 'a tensor past the end of its file');
  await loadError(t, model, edit(name, { file: '/nonexistent/weights.safetensors' }), 'E_NATIVE', /cannot open/, 'a missing file');
  await loadError(t, model, edit(name, { strides: [entry.strides[0] * 2, 1] }), 'E_CHECKPOINT_CORRUPT', /reach past/, 'strides beyond the byte range');
  await loadError(t, model, base, 'E_BACKEND_UNAVAILABLE', /CPU/, 'device cuda', 'cuda');
  t.equal(numel(entry.shape) * 4, entry.byteLength, 'fixture entry is contiguous F32');
});
