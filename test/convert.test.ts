import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import test from 'tape';
import { readManifest, readTensor } from '../lib/checkpoint/index.js';
import { convertModel, float32ToBf16 } from '../lib/convert.js';
import { registerHubCommands } from '../lib/hub/cli.js';
import { describeModel } from '../lib/model-dir.js';
import { isolateHubEnv, startFakeHub, tempDir, tinyRepo } from './helpers/fake-hub.js';
import { fixture } from './helpers/fixtures.js';

isolateHubEnv();

const TINY = fixture('models', 'xxlarge-tiny');

const scratchF = new Float32Array(1);
const scratchU = new Uint32Array(scratchF.buffer);
const asFloat = (u: number) => ((scratchU[0] = u), scratchF[0]);

/** bf16 rounding written independently of the bit trick: the nearer of the two bf16 neighbours, ties to even. */
function referenceBf16(v: number): number {
  if (Number.isNaN(v) || !Number.isFinite(v) || v === 0) return v;
  scratchF[0] = v;
  const lowBits = (scratchU[0] & 0xffff0000) >>> 0;
  const lo = asFloat(lowBits);
  const hi = asFloat(lowBits + 0x10000); // the next bf16 away from zero
  const dLo = Math.abs(v - lo);
  const dHi = Math.abs(hi - v);
  if (dLo !== dHi) return dLo < dHi ? lo : hi;
  return ((lowBits >>> 16) & 1) === 0 ? lo : hi;
}

function bits(values: number[]): number[] {
  return [...float32ToBf16(new Float32Array(values))];
}

test('float32ToBf16 rounds to nearest even and keeps specials', (t) => {
  t.deepEqual(bits([1, -2, 0, -0]), [0x3f80, 0xc000, 0x0000, 0x8000]);
  const f = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];
  t.deepEqual(bits([f(0x3f808000), f(0x3f818000)]), [0x3f80, 0x3f82], 'ties go to the even neighbour');
  t.deepEqual(bits([f(0x3f808001), f(0x3f807fff)]), [0x3f81, 0x3f80], 'above and below the tie');
  t.deepEqual(bits([Infinity, -Infinity, f(0x7f7fffff)]), [0x7f80, 0xff80, 0x7f80], 'max float rounds to infinity');
  const nan = bits([NaN, f(0xff800001)]);
  t.ok(nan.every((b) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0), 'NaN stays NaN (even one whose payload is in the low bits)');
  t.equal(nan[1] & 0x8000, 0x8000, 'with its sign');
  t.deepEqual(bits([f(0x00018000)]), [0x0002], 'subnormals round too');
  t.end();
});

test('convert to bf16: valid safetensors, every tensor the bf16 rounding of the original, accepted by describeModel', async (t) => {
  const out = path.join(tempDir(), 'bf16');
  const seen: number[] = [];
  const res = await convertModel({ model: TINY, out, precision: 'bf16', onProgress: (w) => seen.push(w) });
  t.equal(res.dir, out);
  const source = await readManifest(path.join(TINY, 'open_clip_model.safetensors'));
  const converted = await readManifest(res.weights);
  t.equal(converted.format, 'safetensors');
  t.deepEqual([...converted.tensors.keys()].sort(), [...source.tensors.keys()].sort(), 'same tensor names');
  t.equal(statSync(res.weights).size, res.bytes);
  let mismatches = 0;
  let checked = 0;
  for (const [name, src] of source.tensors) {
    const dst = converted.tensors.get(name)!;
    if (dst.dtype !== 'BF16' || dst.shape.join() !== src.shape.join()) {
      t.fail(`${name}: ${dst.dtype} [${dst.shape}]`);
      continue;
    }
    const a = await readTensor(src);
    const b = await readTensor(dst);
    for (let i = 0; i < a.length; i++) {
      const want = referenceBf16(a[i]);
      if (!(Object.is(b[i], want) || (Number.isNaN(want) && Number.isNaN(b[i])))) mismatches++;
    }
    checked += a.length;
  }
  t.equal(mismatches, 0, `all ${checked} values are the round-to-nearest-even bf16 of the originals`);
  t.ok(res.bytes < statSync(path.join(TINY, 'open_clip_model.safetensors')).size * 0.51, 'about half the size');
  t.ok(seen.length === converted.tensors.size && seen.every((w, i) => i === 0 || w > seen[i - 1]), 'progress per tensor');

  const described = await describeModel(out);
  t.equal(described.arch.vision.timmModelName, (await describeModel(TINY)).arch.vision.timmModelName, 'describeModel accepts it');
  for (const f of ['open_clip_config.json', 'vocab.json', 'merges.txt']) {
    t.ok(readFileSync(path.join(out, f)).equals(readFileSync(path.join(TINY, f))), `${f} copied`);
  }
  const header = readFileSync(res.weights).subarray(0, 8).readBigUInt64LE(0);
  t.equal(Number(header) % 8, 0, 'header padded to 8 bytes');
});

test('convert the torch .bin to fp32: values identical; bf16 -> fp32 is exact', async (t) => {
  const out = path.join(tempDir(), 'fp32');
  const res = await convertModel({
    model: { config: path.join(TINY, 'open_clip_config.json'), weights: path.join(TINY, 'open_clip_pytorch_model.bin'), vocabulary: { vocabJson: path.join(TINY, 'vocab.json'), mergesTxt: path.join(TINY, 'merges.txt') } },
    out,
    precision: 'fp32',
  });
  const source = await readManifest(path.join(TINY, 'open_clip_pytorch_model.bin'));
  const converted = await readManifest(res.weights);
  let same = true;
  for (const [name, src] of source.tensors) {
    const a = await readTensor(src);
    const b = await readTensor(converted.tensors.get(name)!);
    if (converted.tensors.get(name)!.dtype !== 'F32' || !Buffer.from(a.buffer).equals(Buffer.from(b.buffer))) same = false;
  }
  t.ok(same, 'every tensor F32 and bit-identical to the .bin');

  const bf16 = await convertModel({ model: TINY, out: path.join(tempDir(), 'b'), precision: 'bf16' });
  const back = await convertModel({ model: bf16.dir, out: path.join(tempDir(), 'f'), precision: 'fp32' });
  const m1 = await readManifest(bf16.weights);
  const m2 = await readManifest(back.weights);
  let exact = true;
  for (const [name, e] of m1.tensors) {
    if (!Buffer.from((await readTensor(e)).buffer).equals(Buffer.from((await readTensor(m2.tensors.get(name)!)).buffer))) exact = false;
  }
  t.ok(exact, 'widening bf16 to fp32 loses nothing');
});

test('convert refuses to write over its source and rejects an unknown precision', async (t) => {
  await convertModel({ model: TINY, out: TINY, precision: 'bf16' }).then(
    () => t.fail('should throw'),
    (err) => t.equal(err.code, 'E_INVALID_ARGUMENT'),
  );
  await convertModel({ model: TINY, out: tempDir(), precision: 'fp16' as 'bf16' }).then(
    () => t.fail('should throw'),
    (err) => t.equal(err.code, 'E_INVALID_ARGUMENT'),
  );
});

async function runCli(...args: string[]): Promise<string> {
  const program = new Command('convnext-clip').exitOverride().configureOutput({ writeErr: () => undefined });
  registerHubCommands(program);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => ((out += chunk.toString()), true)) as typeof process.stdout.write;
  try {
    await program.parseAsync(args, { from: 'user' });
  } finally {
    process.stdout.write = write;
  }
  return out;
}

test('CLI: download and convert a Hub model by name (through a fake Hub)', async (t) => {
  const hub = await startFakeHub([tinyRepo('laion/cli-tiny')]);
  const cache = tempDir();
  process.env.HF_ENDPOINT = hub.endpoint;
  try {
    const dir = (await runCli('download', 'laion/cli-tiny', '--cache-dir', cache)).trim();
    t.equal(dir, path.join(cache, 'models--laion--cli-tiny', 'snapshots', hub.commitOf('laion/cli-tiny')));
    const out = path.join(tempDir(), 'converted');
    const printed = (await runCli('convert', '--model', 'laion/cli-tiny', '--cache-dir', cache, '--out', out)).trim();
    t.equal(printed, out);
    const manifest = await readManifest(path.join(out, 'open_clip_model.safetensors'));
    t.ok([...manifest.tensors.values()].every((e) => e.dtype === 'BF16'), 'bf16 by default');
    await runCli('convert', '--model', dir, '--out', out, '--precision', 'fp32');
    t.ok([...(await readManifest(path.join(out, 'open_clip_model.safetensors'))).tensors.values()].every((e) => e.dtype === 'F32'), '--precision fp32');
    await runCli('convert', '--model', dir, '--out', out, '--precision', 'fp16').then(
      () => t.fail('should throw'),
      (err) => t.match(String(err.message), /bf16 or fp32/),
    );
  } finally {
    delete process.env.HF_ENDPOINT;
    await hub.close();
  }
});
