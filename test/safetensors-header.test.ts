/**
 * Issue 18 class 11: crafted safetensors layouts against the one header parser, through both of its entry points
 * (a file on disk, as Node loads it; an in-memory byte source, as the browser entry does). Overlaps hidden behind
 * empty tensors, duplicate names, 2^53 offsets and shape products, non-integers: all E_CHECKPOINT_CORRUPT.
 */
import test from 'tape';
import { readManifest } from '../lib/checkpoint/index.js';
import { type ByteSource, readSafetensorsHeader } from '../lib/checkpoint/safetensors-header.js';
import { isClipError } from '../lib/errors.js';
import { tempFolder } from './helpers/checkpoint-tmp.js';
import { safetensorsBytes } from './helpers/safetensors-writer.js';

const tmp = tempFolder('st-header');
const f32 = (shape: number[], offsets: unknown) => ({ dtype: 'F32', shape, data_offsets: offsets });

function memory(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    async read(offset, into) {
      if (offset + into.length > bytes.length) throw new Error('read past the end');
      into.set(bytes.subarray(offset, offset + into.length));
    },
  };
}

async function codeOf(work: Promise<unknown>): Promise<string> {
  try {
    await work;
    return 'accepted';
  } catch (err) {
    return isClipError(err) ? `${err.code}: ${err.message.replace(/^.*invalid safetensors file: /, '')}` : `untyped: ${(err as Error).message}`;
  }
}

const attacks: Array<[string, Buffer | string, RegExp]> = [
  ['an overlap hidden behind an empty tensor', safetensorsBytes({ a: f32([25], [0, 100]), z: f32([0], [50, 50]), c: f32([2], [60, 68]) }, 100), /overlap/],
  ['an empty tensor inside another', safetensorsBytes({ a: f32([4], [0, 16]), z: f32([0], [8, 8]) }, 16), /overlap/],
  ['a range nested in an earlier longer one', safetensorsBytes({ a: f32([8], [0, 32]), b: f32([1], [4, 8]), c: f32([1], [8, 12]) }, 32), /overlap/],
  ['two tensors on the same bytes', safetensorsBytes({ a: f32([2], [0, 8]), b: f32([2], [0, 8]) }, 8), /overlap/],
  ['a duplicate tensor name', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', /twice/],
  ['a duplicate key inside an entry', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"data_offsets":[4,8]}}', /twice/],
  ['an offset of 2^53 + 1 (rounds to 2^53)', '{"a":{"dtype":"U8","shape":[4],"data_offsets":[9007199254740993,9007199254740997]}}', /data_offsets/],
  ['a shape product past 2^53', safetensorsBytes({ a: { dtype: 'F64', shape: [2 ** 30, 2 ** 30, 16], data_offsets: [0, 8] } }, 8), /too large|needs/],
  ['fractional offsets', safetensorsBytes({ a: f32([1], [0.5, 4.5]) }, 8), /data_offsets/],
  ['string offsets', safetensorsBytes({ a: f32([1], ['0', '4']) }, 4), /data_offsets/],
  ['three offsets', safetensorsBytes({ a: f32([1], [0, 4, 8]) }, 8), /data_offsets/],
  ['a string dimension', safetensorsBytes({ a: { dtype: 'F32', shape: ['2'], data_offsets: [0, 8] } }, 8), /shape/],
  ['a range past the data section', safetensorsBytes({ a: f32([2], [4, 12]) }, 8), /past the end/],
  ['__metadata__ that is not an object', safetensorsBytes({ __metadata__: 'x', a: f32([1], [0, 4]) }, 4), /__metadata__/],
];

for (const [label, raw, pattern] of attacks) {
  test(`safetensors: ${label}`, async (t) => {
    t.timeoutAfter(10_000);
    const bytes = typeof raw === 'string' ? safetensorsBytes(raw, 16) : raw;
    const file = tmp.write(`${label.replace(/\W+/g, '_')}.safetensors`, bytes);
    for (const [path, work] of [['file', () => readManifest(file)], ['byte source', () => readSafetensorsHeader(memory(bytes), 'x.safetensors')]] as const) {
      const got = await codeOf(work());
      t.ok(got.startsWith('E_CHECKPOINT_CORRUPT') && pattern.test(got), `${path}: ${got}`);
    }
  });
}

test('safetensors: good layouts still load (gaps, empty tensors at a boundary, any key order)', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['contiguous', safetensorsBytes({ b: f32([1], [4, 8]), a: f32([1], [0, 4]) }, 8)],
    ['a gap between tensors', safetensorsBytes({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, 12)],
    ['empty tensors at boundaries', safetensorsBytes({ a: f32([1], [0, 4]), z: f32([0, 3], [4, 4]), y: f32([0], [4, 4]), b: f32([1], [4, 8]) }, 8)],
    ['metadata and escaped names', safetensorsBytes({ __metadata__: { format: 'pt' }, 'a\\"b': f32([1], [0, 4]), 'a"b': f32([1], [4, 8]) }, 8)],
  ];
  for (const [label, bytes] of cases) {
    const manifest = await readSafetensorsHeader(memory(bytes), 'x.safetensors');
    const fromFile = await readManifest(tmp.write(`ok-${label.replace(/\W+/g, '_')}.safetensors`, bytes));
    t.equal(manifest.tensors.size, fromFile.tensors.size, `${label}: ${manifest.tensors.size} tensors either way`);
  }
});
