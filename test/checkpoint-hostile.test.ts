import { copyFileSync, mkdirSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { readManifest } from '../lib/checkpoint/index.js';
import { isClipError } from '../lib/errors.js';
import { rejectsWith, tempFolder } from './helpers/checkpoint-tmp.js';
import { fixture } from './helpers/fixtures.js';
import { safetensorsBytes } from './helpers/safetensors-writer.js';
import { PickleWriter, rampTensor, statePickle, torchZip, writeZip } from './helpers/torch-zip-writer.js';

const tmp = tempFolder('hostile');
const tiny = (f: string): string => fixture('models', 'xxlarge-tiny', f);
const tensors = [rampTensor('a.weight', [3, 4]), rampTensor('b', [5])];

/** Cuts a copy of `source` at each point (largest first, truncating in place) and expects E_CHECKPOINT_CORRUPT. */
async function truncations(t: test.Test, source: string, cuts: number[], label: string): Promise<void> {
  const file = path.join(tmp.dir, `cut-${path.basename(source)}`);
  copyFileSync(source, file);
  const sorted = [...new Set(cuts)].filter((c) => c >= 0 && c < statSync(source).size).sort((a, b) => b - a);
  const wrong: string[] = [];
  for (const cut of sorted) {
    truncateSync(file, cut);
    try {
      await readManifest(file);
      wrong.push(`${cut}: parsed`);
    } catch (err) {
      if (!isClipError(err, 'E_CHECKPOINT_CORRUPT')) wrong.push(`${cut}: ${(err as Error).name} ${(err as Error).message}`);
    }
  }
  t.deepEqual(wrong, [], `${label}: ${sorted.length} truncations each E_CHECKPOINT_CORRUPT`);
}

function cutPoints(size: number, spread: number, tail: number): number[] {
  const cuts = [0, 1, 4, 7, 8, 9, 21, 22, 30, 31, 64];
  for (let i = 1; i < spread; i++) cuts.push(Math.floor((size * i) / spread));
  for (let k = 1; k <= tail; k++) cuts.push(size - k);
  return cuts;
}

test('truncated checkpoints at many cut points', async (t) => {
  const bin = tiny('open_clip_pytorch_model.bin');
  await truncations(t, bin, cutPoints(statSync(bin).size, 120, 200), 'xxlarge-tiny .bin');
  const st = tiny('open_clip_model.safetensors');
  await truncations(t, st, cutPoints(statSync(st).size, 120, 50), 'xxlarge-tiny .safetensors');
  for (const zip64 of [false, true]) {
    const src = tmp.write(`small-${zip64}.pt`, torchZip(tensors, { zip64, deflatePickle: zip64 }).bytes);
    const size = statSync(src).size;
    await truncations(t, src, Array.from({ length: size }, (_, i) => i), `synthetic${zip64 ? ' ZIP64' : ''} torch zip, every cut`);
  }
});

test('corrupted zip structures', async (t) => {
  const base = torchZip(tensors);
  const { layout } = base;
  const patched = (label: string, patch: (b: Buffer) => void): string => {
    const b = Buffer.from(base.bytes);
    patch(b);
    return tmp.write(`${label}.pt`, b);
  };
  const eocd = layout.totalSize - 22;
  const bad = async (label: string, patch: (b: Buffer) => void, re?: RegExp): Promise<void> =>
    rejectsWith(t, readManifest(patched(label, patch)), 'E_CHECKPOINT_CORRUPT', label, re);

  await bad('data.pkl byte flipped (CRC)', (b) => (b[layout.dataOffsets[0] + 10] ^= 0x20), /CRC/);
  await bad('EOCD signature destroyed', (b) => b.writeUInt32LE(0, eocd), /end-of-central-directory/);
  await bad('central directory offset moved', (b) => b.writeUInt32LE(layout.centralDirectoryOffset + 3, eocd + 16));
  await bad('central directory past its end', (b) => b.writeUInt32LE(0xfffffff0, eocd + 16));
  await bad('entry count larger than the directory', (b) => (b.writeUInt16LE(60000, eocd + 8), b.writeUInt16LE(60000, eocd + 10)));
  await bad('EOCD needs ZIP64 but has no locator', (b) => b.writeUInt32LE(0xffffffff, eocd + 12), /ZIP64/);
  await bad('multi-disk archive', (b) => b.writeUInt16LE(1, eocd + 4), /multi-disk/);
  await bad('central entry signature', (b) => b.writeUInt32LE(0x12345678, layout.centralDirectoryOffset));
  await bad('encrypted entry', (b) => b.writeUInt16LE(1, layout.centralDirectoryOffset + 8), /encrypted/);
  await bad('local header signature of a storage', (b) => b.writeUInt32LE(0, layout.localHeaderOffsets[1]), /local header/);
  await bad('local header names a different file', (b) => (b[layout.localHeaderOffsets[1] + 30 + 8] ^= 1), /different file/);
  await bad('local header size disagrees', (b) => b.writeUInt32LE(7, layout.localHeaderOffsets[1] + 22), /disagree/);
  await bad('local header offset past the directory', (b) => {
    // second central record: its local header offset field
    const second = layout.centralDirectoryOffset + 46 + 'archive/data.pkl'.length;
    b.writeUInt32LE(layout.centralDirectoryOffset + 10, second + 42);
  });

  const plainZip = writeZip([{ name: 'hello.txt', data: Buffer.from('hi') }]).bytes;
  await rejectsWith(t, readManifest(tmp.write('plain.zip', plainZip)), 'E_CHECKPOINT_CORRUPT', 'a zip without data.pkl', /data\.pkl/);
  const two = writeZip([
    { name: 'a/data.pkl', data: statePickle([]) },
    { name: 'b/data.pkl', data: statePickle([]) },
  ]).bytes;
  await rejectsWith(t, readManifest(tmp.write('two.pt', two)), 'E_CHECKPOINT_CORRUPT', 'two archives', /several data\.pkl/);
  const dup = writeZip([
    { name: 'a/data.pkl', data: statePickle([]) },
    { name: 'a/data.pkl', data: statePickle([]) },
  ]).bytes;
  await rejectsWith(t, readManifest(tmp.write('dup.pt', dup)), 'E_CHECKPOINT_CORRUPT', 'duplicate entry names', /two entries/);
  const deflatedStorage = writeZip([
    { name: 'archive/data.pkl', data: statePickle([{ name: 'x', dtype: 'F32', shape: [2], storageKey: '0', storageNumel: 2 }]) },
    { name: 'archive/data/0', data: new Uint8Array(8), method: 8 },
  ]).bytes;
  await rejectsWith(t, readManifest(tmp.write('deflated-storage.pt', deflatedStorage)), 'E_CHECKPOINT_CORRUPT', 'compressed tensor data', /compressed/);
  const badMethod = torchZip(tensors);
  badMethod.bytes.writeUInt16LE(12, badMethod.layout.localHeaderOffsets[0] + 8);
  badMethod.bytes.writeUInt16LE(12, badMethod.layout.centralDirectoryOffset + 10);
  await rejectsWith(t, readManifest(tmp.write('bzip2.pt', badMethod.bytes)), 'E_CHECKPOINT_CORRUPT', 'data.pkl with an unsupported method', /method 12/);
  await rejectsWith(t, readManifest(tmp.write('empty.zip', writeZip([]).bytes)), 'E_CHECKPOINT_CORRUPT', 'empty zip');
});

test('tensor references that do not fit their storage', async (t) => {
  const pkl = (over: Partial<Parameters<typeof statePickle>[0][number]>): Buffer =>
    statePickle([{ name: 'x', dtype: 'F32', shape: [2, 2], storageKey: '0', storageNumel: 4, ...over }]);
  const zip = (p: Buffer, data = new Uint8Array(16)): string =>
    tmp.write(`ref-${Math.random().toString(36).slice(2)}.pt`, writeZip([{ name: 'archive/data.pkl', data: p }, { name: 'archive/data/0', data }]).bytes);
  t.equal((await readManifest(zip(pkl({})))).tensors.size, 1, 'the baseline parses');
  const cases: Array<[string, string]> = [
    ['storage numel larger than its entry', zip(pkl({ storageNumel: 5 }))],
    ['view past the storage (offset)', zip(pkl({ storageOffset: 1 }))],
    ['view past the storage (strides)', zip(pkl({ strides: [3, 1] }))],
    ['view past the storage (shape)', zip(pkl({ shape: [4, 2] }))],
    ['missing storage entry', zip(pkl({ storageKey: '7' }))],
    ['huge shape', zip(pkl({ shape: [2 ** 40, 2 ** 40], storageNumel: 4 }))],
  ];
  for (const [label, file] of cases) await rejectsWith(t, readManifest(file), 'E_CHECKPOINT_CORRUPT', label);
});

test('pickles asking for code are refused with E_CHECKPOINT_UNSAFE naming the global', async (t) => {
  const evil: Array<[string, Buffer, RegExp]> = [
    ['os.system via GLOBAL + REDUCE', new PickleWriter().proto(2).global('os', 'system').str('touch /tmp/pwned-convnext').raw(0x85).reduce().stop().bytes(), /os\.system/],
    ['os.system via STACK_GLOBAL', new PickleWriter().proto(4).stackGlobal('os', 'system').str('id', 'short').raw(0x85).reduce().stop().bytes(), /os\.system/],
    ['posix.system via STACK_GLOBAL', new PickleWriter().proto(4).stackGlobal('posix', 'system').str('id', 'short').raw(0x85).reduce().stop().bytes(), /posix\.system/],
    ['builtins.eval with REDUCE', new PickleWriter().proto(2).global('builtins', 'eval').str('1+1').raw(0x85).reduce().stop().bytes(), /builtins\.eval/],
    ['subprocess.Popen via INST', new PickleWriter().proto(0).mark().str('ls').raw(0x69, Buffer.from('subprocess\nPopen\n')).stop().bytes(), /subprocess\.Popen/],
    ['torch.load', new PickleWriter().proto(2).global('torch', 'load').stop().bytes(), /torch\.load/],
    ['a whole model object', new PickleWriter().proto(2).global('open_clip.model', 'CLIP').raw(0x29, 0x81).stop().bytes(), /open_clip\.model\.CLIP/],
    ['__builtin__.getattr', new PickleWriter().proto(2).global('__builtin__', 'getattr').stop().bytes(), /getattr/],
    ['copyreg extension code (EXT1)', new PickleWriter().proto(2).raw(0x82, 1).stop().bytes(), /extension registry/],
    ['calling a storage type', new PickleWriter().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop().bytes(), /FloatStorage/],
  ];
  for (const [label, pickle, re] of evil) {
    const file = tmp.write(`evil-${label.replace(/\W+/g, '_')}.pt`, torchZip(tensors, { pickle }).bytes);
    await rejectsWith(t, readManifest(file), 'E_CHECKPOINT_UNSAFE', label, re);
  }
  // A disallowed global deep inside an otherwise valid state dict.
  const nested = new PickleWriter().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().str('x').global('nt', 'system').setitem().stop().bytes();
  await rejectsWith(t, readManifest(tmp.write('nested.pt', torchZip(tensors, { pickle: nested }).bytes)), 'E_CHECKPOINT_UNSAFE', 'nt.system inside a dict', /nt\.system/);
  t.throws(() => statSync('/tmp/pwned-convnext'), 'nothing ran');
});

test('hostile safetensors headers', async (t) => {
  const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });
  const cases: Array<[string, Buffer, RegExp?]> = [
    ['header lies about sizes', safetensorsBytes({ a: f32([2, 2], [0, 8]) }, 16), /needs 16/],
    ['overlapping offsets', safetensorsBytes({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, 12), /overlap/],
    ['offsets past EOF', safetensorsBytes({ a: f32([4], [0, 16]) }, 8), /past the end/],
    ['huge header length', safetensorsBytes({}, 0, 0xffffffffffffffffn), /header length/],
    ['header length past EOF', safetensorsBytes({}, 0, 1000n), /past the end/],
    ['non-JSON header', safetensorsBytes('{"a": [1, 2', 0), /JSON/],
    ['invalid UTF-8 header', Buffer.concat([safetensorsBytes('{"a":1}').subarray(0, 8), Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x20, 0x20, 0x20])]), /UTF-8/],
    ['unknown dtype', safetensorsBytes({ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1), /unknown dtype/],
    ['prototype-named dtype', safetensorsBytes({ a: { dtype: 'toString', shape: [1], data_offsets: [0, 1] } }, 1), /unknown dtype/],
    ['header is an array', safetensorsBytes([1, 2], 0), /not a JSON object/],
    ['entry is a number', safetensorsBytes({ a: 3 }, 0)],
    ['negative dimension', safetensorsBytes({ a: f32([-1], [0, 4]) }, 4)],
    ['fractional dimension', safetensorsBytes({ a: f32([1.5], [0, 4]) }, 4)],
    ['reversed offsets', safetensorsBytes({ a: f32([1], [4, 0]) }, 4)],
    ['huge shape', safetensorsBytes({ a: f32([2 ** 40, 2 ** 40], [0, 4]) }, 4)],
    ['too-short file', Buffer.from([1, 2, 3])],
    ['empty file', Buffer.alloc(0)],
  ];
  for (const [label, bytes, re] of cases) {
    await rejectsWith(t, readManifest(tmp.write(`st-${label.replace(/\W+/g, '_')}.safetensors`, bytes)), 'E_CHECKPOINT_CORRUPT', label, re);
  }
});

test('missing files, folders and legacy torch files', async (t) => {
  await rejectsWith(t, readManifest(path.join(tmp.dir, 'nope.bin')), 'E_NOT_FOUND', 'missing file');
  const folder = path.join(tmp.dir, 'a-folder.bin');
  mkdirSync(folder);
  await rejectsWith(t, readManifest(folder), 'E_IO', 'a folder');
  const legacy = Buffer.concat([Buffer.from([0x80, 0x02, 0x8a, 0x0a]), Buffer.alloc(40)]);
  await rejectsWith(t, readManifest(tmp.write('legacy.pt', legacy)), 'E_CHECKPOINT_CORRUPT', 'legacy torch.save format', /legacy/);
});
