import { open } from 'node:fs/promises';
import test from 'tape';
import { detectFormat, readManifest, readTensor, readTorchZipManifest } from '../lib/checkpoint/index.js';
import { openFile } from '../lib/checkpoint/io.js';
import { readZipDirectory } from '../lib/checkpoint/zip.js';
import { DTYPE_BYTES, type TensorEntry, isContiguous, numel } from '../lib/manifest.js';
import { rejectsWith, tempFolder } from './helpers/checkpoint-tmp.js';
import { FIXTURE_MODELS, fixture } from './helpers/fixtures.js';
import { f32Bytes, rampTensor, torchZip } from './helpers/torch-zip-writer.js';

const tmp = tempFolder('ckpt');
const tiny = (f: string): string => fixture('models', 'xxlarge-tiny', f);

async function rawBytes(entry: TensorEntry): Promise<Buffer> {
  const h = await open(entry.file, 'r');
  try {
    const b = Buffer.alloc(entry.byteLength);
    await h.read(b, 0, b.length, entry.offset);
    return b;
  } finally {
    await h.close();
  }
}

for (const name of FIXTURE_MODELS) {
  test(`fixture ${name}: safetensors manifest loads`, async (t) => {
    const m = await readManifest(fixture('models', name, 'open_clip_model.safetensors'));
    t.equal(m.format, 'safetensors');
    t.ok(m.tensors.size > 20, `${m.tensors.size} tensors`);
    t.ok(m.tensors.has('visual.trunk.stem.0.weight') && m.tensors.has('logit_scale'), 'open_clip names');
    const scale = await readTensor(m.tensors.get('logit_scale')!);
    t.equal(scale.length, 1);
    t.ok(Number.isFinite(scale[0]), `logit_scale ${scale[0]}`);
  });
}

test('xxlarge-tiny: .bin and .safetensors list the same tensors with byte-identical data', async (t) => {
  t.equal(await detectFormat(tiny('open_clip_pytorch_model.bin')), 'torch-zip');
  t.equal(await detectFormat(tiny('open_clip_model.safetensors')), 'safetensors');
  const bin = await readManifest(tiny('open_clip_pytorch_model.bin'));
  const st = await readManifest(tiny('open_clip_model.safetensors'));
  t.equal(bin.format, 'torch-zip');
  t.deepEqual([...bin.tensors.keys()].sort(), [...st.tensors.keys()].sort(), `same ${bin.tensors.size} names`);
  let same = 0;
  let problems = 0;
  for (const [name, b] of bin.tensors) {
    const s = st.tensors.get(name)!;
    if (b.dtype !== s.dtype || JSON.stringify(b.shape) !== JSON.stringify(s.shape)) {
      problems++;
      t.fail(`${name}: ${b.dtype}[${b.shape}] vs ${s.dtype}[${s.shape}]`);
      continue;
    }
    if (!isContiguous(b) || b.byteLength !== numel(b.shape) * DTYPE_BYTES[b.dtype]) {
      problems++;
      t.fail(`${name} is not contiguous in the .bin`);
      continue;
    }
    if (b.offset % 64 !== 0) problems++;
    if ((await rawBytes(b)).equals(await rawBytes(s))) same++;
    else {
      problems++;
      t.fail(`${name}: bytes differ`);
    }
  }
  t.equal(same, bin.tensors.size, `all ${same} tensors byte-identical`);
  t.equal(problems, 0, 'no dtype/shape/layout/alignment differences (torch aligns data to 64 bytes)');
  t.deepEqual(await readTensor(bin.tensors.get('logit_scale')!), await readTensor(st.tensors.get('logit_scale')!), 'logit_scale reads the same');
});

test('synthetic torch zip: plain, forced ZIP64, deflated data.pkl, protocol 4, parameters, wrapper', async (t) => {
  const tensors = [rampTensor('a.weight', [3, 4]), rampTensor('b', [5], 0.5), rampTensor('scalar', [])];
  const variants = {
    plain: {},
    zip64: { zip64: true },
    deflated: { deflatePickle: true },
    protocol4: { protocol4: true },
    parameters: { parameters: true },
    wrapper: { wrapper: true },
    unaligned: { align: 1 },
    everything: { zip64: true, deflatePickle: true, protocol4: true, parameters: true, wrapper: true, prefix: 'module.' },
  };
  for (const [label, opts] of Object.entries(variants)) {
    const file = tmp.write(`${label}.pt`, torchZip(tensors, opts).bytes);
    const m = await readManifest(file);
    t.deepEqual([...m.tensors.keys()], ['a.weight', 'b', 'scalar'], `${label}: names`);
    t.deepEqual(m.tensors.get('a.weight')!.shape, [3, 4], `${label}: shape`);
    t.deepEqual(Array.from(await readTensor(m.tensors.get('b')!)), [0, 0.5, 1, 1.5, 2], `${label}: values`);
    t.deepEqual(Array.from(await readTensor(m.tensors.get('scalar')!)), [0], `${label}: 0-d tensor`);
  }
  const { handle, size } = await openFile(tmp.write('z64.pt', torchZip(tensors, { zip64: true }).bytes));
  try {
    t.ok((await readZipDirectory(handle, 'z64.pt', size)).zip64, 'the forced-ZIP64 file is read through its ZIP64 records');
  } finally {
    await handle.close();
  }
});

test('synthetic torch zip: strided views, shared storages, storage offsets, F16/BF16/F64', async (t) => {
  const storage = f32Bytes(Array.from({ length: 12 }, (_, i) => i));
  const half = new Uint16Array([0x3c00, 0xc000, 0x3555, 0x7c00, 0x0001]); // 1, -2, 0.33325, inf, 2^-24
  const bf16 = new Uint16Array([0x3f80, 0xc040, 0x4049]); // 1, -3, 3.140625
  const file = tmp.write(
    'views.pth',
    torchZip([
      { name: 'w', dtype: 'F32', shape: [3, 4], data: storage, storageKey: 's' },
      { name: 'wT', dtype: 'F32', shape: [4, 3], strides: [1, 4], data: storage, storageKey: 's' },
      { name: 'row1', dtype: 'F32', shape: [4], storageOffset: 4, data: storage, storageKey: 's' },
      { name: 'col2', dtype: 'F32', shape: [3, 1], strides: [4, 1], storageOffset: 2, data: storage, storageKey: 's' },
      { name: 'expanded', dtype: 'F32', shape: [2, 3], strides: [0, 1], data: storage, storageKey: 's' },
      { name: 'empty', dtype: 'F32', shape: [0, 5], data: new Uint8Array(0) },
      { name: 'h', dtype: 'F16', shape: [5], data: new Uint8Array(half.buffer) },
      { name: 'bf', dtype: 'BF16', shape: [3], data: new Uint8Array(bf16.buffer) },
      { name: 'd', dtype: 'F64', shape: [2], data: new Uint8Array(new Float64Array([1.5, -2.25]).buffer) },
      { name: 'ids', dtype: 'I64', shape: [2], data: new Uint8Array(new BigInt64Array([7n, 9n]).buffer) },
    ]).bytes,
  );
  const m = await readTorchZipManifest(file);
  const get = async (n: string): Promise<number[]> => Array.from(await readTensor(m.tensors.get(n)!));
  t.deepEqual(await get('wT'), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11], 'transposed view');
  t.deepEqual(await get('row1'), [4, 5, 6, 7], 'storage offset');
  t.deepEqual(await get('col2'), [2, 6, 10], 'column view');
  t.deepEqual(await get('expanded'), [0, 1, 2, 0, 1, 2], 'zero stride');
  t.deepEqual(await get('empty'), [], 'empty tensor');
  t.equal(m.tensors.get('row1')!.offset, m.tensors.get('w')!.offset + 16, 'offset = storage start + storage_offset * itemsize');
  t.equal(m.tensors.get('wT')!.byteLength, 48, 'byteLength spans the strided view');
  t.equal(m.tensors.get('col2')!.byteLength, 36);
  const h = await get('h');
  t.deepEqual([h[0], h[1], h[3]], [1, -2, Infinity], 'F16');
  t.ok(Math.abs(h[2] - 0.33325) < 1e-4 && h[4] === 2 ** -24, 'F16 fractions and subnormals');
  t.deepEqual(await get('bf'), [1, -3, 3.140625], 'BF16');
  t.deepEqual(await get('d'), [1.5, -2.25], 'F64');
  t.equal(m.tensors.get('ids')!.dtype, 'I64', 'I64 is listed');
  await rejectsWith(t, readTensor(m.tensors.get('ids')!), 'E_TENSOR_SHAPE', 'readTensor refuses integer tensors');
  await rejectsWith(t, readTensor(m.tensors.get('w')!, { maxBytes: 16 }), 'E_INPUT_TOO_LARGE', 'readTensor size cap');
});

test('module. prefixes are stripped (both formats); mixed names are left alone', async (t) => {
  const bin = await readManifest(tmp.write('ddp.bin', torchZip([rampTensor('x.weight', [2])], { prefix: 'module.' }).bytes));
  t.deepEqual([...bin.tensors.keys()], ['x.weight']);
  t.equal(bin.tensors.get('x.weight')!.name, 'x.weight');
  const header = Buffer.from(JSON.stringify({ 'module.y': { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const st = await readManifest(tmp.write('ddp.safetensors', Buffer.concat([len, header, Buffer.alloc(4)])));
  t.deepEqual([...st.tensors.keys()], ['y']);
  const mixed = await readManifest(
    tmp.write('mixed.pt', torchZip([rampTensor('module.a', [1]), rampTensor('b', [1])]).bytes),
  );
  t.deepEqual([...mixed.tensors.keys()], ['module.a', 'b']);
});

test('byteorder record: little is accepted, big is refused', async (t) => {
  const little = torchZip([rampTensor('a', [2])], { extraEntries: [{ name: 'archive/byteorder', data: Buffer.from('little') }] });
  t.equal((await readManifest(tmp.write('little.pt', little.bytes))).tensors.size, 1);
  const big = torchZip([rampTensor('a', [2])], { extraEntries: [{ name: 'archive/byteorder', data: Buffer.from('big') }] });
  await rejectsWith(t, readManifest(tmp.write('big.pt', big.bytes)), 'E_CHECKPOINT_CORRUPT', 'big-endian refused', /little-endian/);
});
