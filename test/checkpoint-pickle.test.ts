import test from 'tape';
import { DEFAULT_PICKLE_LIMITS, PyDict, PySet, PyTuple, unpickle } from '../lib/checkpoint/pickle.js';
import { TensorRef, torchHooks } from '../lib/checkpoint/torch-pickle.js';
import { type ClipErrorCode, isClipError } from '../lib/errors.js';
import { PickleWriter, statePickle } from './helpers/torch-zip-writer.js';

const hooks = torchHooks('test.pkl');
const load = (b: Uint8Array, limits = DEFAULT_PICKLE_LIMITS): unknown => unpickle(b, hooks, 'test.pkl', limits);
const P = (): PickleWriter => new PickleWriter();

function throwsCode(t: test.Test, fn: () => unknown, code: ClipErrorCode, what: string, re?: RegExp): void {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (err) {
    const ok = isClipError(err, code) && (!re || re.test(err.message));
    t.ok(ok, `${what}: ${ok ? code : `expected ${code}, got ${(err as Error).name}: ${(err as Error).message}`}`);
  }
}

test('plain values across protocols 0-5', (t) => {
  const v = load(
    P().proto(4).raw(0x95, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0])) // FRAME
      .mark()
      .none().raw(0x88).raw(0x89) // None True False
      .int(7).int(300).int(-5).int(2 ** 40) // BININT1/2/BININT/LONG1
      .raw(0x8b, Buffer.from([9, 0, 0, 0]), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1])) // LONG4 2^64
      .raw(0x47, Buffer.from([0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18])) // BINFLOAT pi
      .raw(0x49, Buffer.from('01\n')).raw(0x49, Buffer.from('-12\n')).raw(0x4c, Buffer.from('99L\n')).raw(0x46, Buffer.from('2.5\n'))
      .str('héllo').str('short', 'short').str('eight', 'bin8')
      .raw(0x56, Buffer.from('a\\u00e9b\n')).raw(0x53, Buffer.from("'x\\ny'\n")).raw(0x55, 2, Buffer.from('py'))
      .raw(0x43, 3, Buffer.from([1, 2, 3])).raw(0x96, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([9]))
      .raw(0x8f).mark().int(1).int(2).raw(0x90) // set {1, 2}
      .mark().int(3).raw(0x91) // frozenset
      .raw(0x5d).int(1).raw(0x61).mark().int(2).int(3).raw(0x65) // list [1, 2, 3]
      .raw(0x94).int(99).raw(0x30).raw(0x68, 0) // MEMOIZE, (99, POP), BINGET 0
      .raw(0x6c) // LIST of everything since MARK
      .stop().bytes(),
  ) as unknown[];
  t.deepEqual(v.slice(0, 7), [null, true, false, 7, 300, -5, 2 ** 40]);
  t.equal(v[7], 2n ** 64n, 'LONG4 beyond 2^53 is a bigint');
  t.equal(v[8], Math.PI);
  t.deepEqual(v.slice(9, 13), [true, -12, 99, 2.5], 'protocol-0 INT/LONG/FLOAT');
  t.deepEqual(v.slice(13, 19), ['héllo', 'short', 'eight', 'aéb', 'x\ny', 'py'], 'strings');
  t.deepEqual(Array.from(v[19] as Uint8Array), [1, 2, 3]);
  t.deepEqual(Array.from(v[20] as Uint8Array), [9]);
  t.deepEqual((v[21] as PySet).items, [1, 2]);
  t.ok((v[22] as PySet).frozen);
  t.deepEqual(v[23], [1, 2, 3]);
  t.deepEqual(v[24], [1, 2, 3], 'memo returns the same list');
  t.equal(v[23], v[24], 'by reference');
  t.end();
});

test('torch state dict pickles become tensor references', (t) => {
  const pkl = statePickle(
    [
      { name: 'w', dtype: 'F16', shape: [2, 3], strides: [1, 2], storageKey: '0', storageOffset: 1, storageNumel: 7 },
      { name: 'v', dtype: 'BF16', shape: [], storageKey: '1', storageNumel: 1 },
    ],
    { parameters: true },
  );
  const d = load(pkl);
  t.ok(d instanceof PyDict);
  const w = (d as PyDict).map.get('w') as TensorRef;
  t.ok(w instanceof TensorRef);
  t.deepEqual([w.storage.dtype, w.storage.key, w.storage.numel, w.storageOffset, w.shape, w.strides], ['F16', '0', 7, 1, [2, 3], [1, 2]]);
  t.deepEqual(((d as PyDict).map.get('v') as TensorRef).shape, []);
  // _rebuild_from_type_v2(_rebuild_tensor_v2, torch.nn.parameter.Parameter, (args...), state)
  const inner = statePickle([{ name: 'x', dtype: 'F32', shape: [1], storageKey: '0', storageNumel: 1 }]);
  t.ok(load(inner) instanceof PyDict, 'baseline');
  const fromType = P().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce()
    .str('x').global('torch._tensor', '_rebuild_from_type_v2').mark()
    .global('torch._utils', '_rebuild_tensor_v2').global('torch.nn.parameter', 'Parameter')
    .mark().mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(1).tuple().binpersid()
    .int(0).tupleOf([1]).tupleOf([1]).newFalse().global('collections', 'OrderedDict').emptyTuple().reduce().tuple()
    .emptyDict().tuple().reduce().setitem().stop().bytes();
  t.ok(((load(fromType) as PyDict).map.get('x') as TensorRef).shape.length === 1, '_rebuild_from_type_v2');
  const codecs = load(P().proto(2).global('_codecs', 'encode').str('\u00ff').str('latin1').raw(0x86).reduce().stop().bytes());
  t.deepEqual(Array.from(codecs as Uint8Array), [255], '_codecs.encode for protocol-2 bytes');
  t.end();
});

test('malformed pickles are E_CHECKPOINT_CORRUPT', (t) => {
  const cases: Array<[string, Buffer | Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['no STOP', P().proto(2).int(1).bytes()],
    ['stack underflow', P().proto(2).reduce().stop().bytes()],
    ['pop below a MARK', P().proto(2).int(1).mark().raw(0x85).stop().bytes()],
    ['unknown opcode', P().raw(0xff).stop().bytes()],
    ['protocol 6', P().proto(6).none().stop().bytes()],
    ['huge BINUNICODE length', P().raw(0x58, Buffer.from([0xf0, 0xff, 0xff, 0xff]), Buffer.from('abc')).stop().bytes()],
    ['huge BINUNICODE8 length', P().raw(0x8d, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x10])).stop().bytes()],
    ['huge LONG4 length', P().raw(0x8b, Buffer.from([0xff, 0xff, 0xff, 0x7f])).stop().bytes()],
    ['negative LONG4 length', P().raw(0x8b, Buffer.from([0xff, 0xff, 0xff, 0xff])).stop().bytes()],
    ['missing memo entry', P().proto(2).binget(5).stop().bytes()],
    ['invalid UTF-8', P().raw(0x8c, 2, Buffer.from([0xc3, 0x28])).stop().bytes()],
    ['out-of-band buffer', P().proto(5).raw(0x97).stop().bytes()],
    ['text INT without newline', P().raw(0x49, Buffer.from('12')).bytes()],
    ['invalid text INT', P().raw(0x49, Buffer.from('1x\n')).stop().bytes()],
    ['APPEND to a dict', P().emptyDict().int(1).raw(0x61).stop().bytes()],
    ['SETITEM on a list', P().raw(0x5d).int(1).int(2).setitem().stop().bytes()],
    ['odd DICT items', P().mark().int(1).raw(0x64).stop().bytes()],
    ['REDUCE args not a tuple', P().global('collections', 'OrderedDict').int(1).reduce().stop().bytes()],
    ['calling a string', P().str('x').emptyTuple().reduce().stop().bytes()],
    ['persistent id of the wrong shape', P().str('storage').binpersid().stop().bytes()],
    ['storage key with a path', P().mark().str('storage').global('torch', 'FloatStorage').str('../x').str('cpu').int(1).tuple().binpersid().stop().bytes()],
    ['tensor with too few arguments', P().global('torch._utils', '_rebuild_tensor_v2').mark().int(1).tuple().reduce().stop().bytes()],
    ['BUILD on a list', P().raw(0x5d).emptyDict().build().stop().bytes()],
    ['NEWOBJ_EX keyword arguments', P().global('collections', 'OrderedDict').emptyTuple().emptyDict().str('a').int(1).setitem().raw(0x92).stop().bytes()],
  ];
  for (const [label, bytes] of cases) throwsCode(t, () => load(bytes), 'E_CHECKPOINT_CORRUPT', label);
  const valid = statePickle([{ name: 'x', dtype: 'F32', shape: [2], storageKey: '0', storageNumel: 2 }]);
  let wrong = 0;
  for (let cut = 0; cut < valid.length; cut++) {
    try {
      load(valid.subarray(0, cut));
      wrong++;
    } catch (err) {
      if (!isClipError(err, 'E_CHECKPOINT_CORRUPT')) wrong++;
    }
  }
  t.equal(wrong, 0, `all ${valid.length} truncations of a state-dict pickle are corrupt`);
  t.end();
});

test('resource limits: opcodes, stack, marks, memo', (t) => {
  const limits = { ...DEFAULT_PICKLE_LIMITS, maxOps: 100, maxStack: 50, maxMarks: 20, maxMemo: 10, maxItems: 30 };
  const many = (n: number, op: (p: PickleWriter) => void): Buffer => {
    const p = P().proto(2).none();
    for (let i = 0; i < n; i++) op(p);
    return p.stop().bytes();
  };
  throwsCode(t, () => load(many(200, (p) => p.raw(0x30, 0x4e)), limits), 'E_CHECKPOINT_CORRUPT', 'opcode budget', /opcodes/);
  throwsCode(t, () => load(many(60, (p) => p.raw(0x32)), limits), 'E_CHECKPOINT_CORRUPT', 'stack limit', /stack exceeds/);
  throwsCode(t, () => load(many(30, (p) => p.mark()), limits), 'E_CHECKPOINT_CORRUPT', 'mark depth', /MARKs nest/);
  throwsCode(t, () => load(many(20, (p) => p.raw(0x94)), limits), 'E_CHECKPOINT_CORRUPT', 'memo size', /memo exceeds/);
  const appendBomb = P().proto(2).raw(0x5d);
  for (let k = 0; k < 4; k++) appendBomb.mark().raw(0x4e).raw(0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32, 0x32).raw(0x65);
  throwsCode(t, () => load(appendBomb.stop().bytes(), { ...limits, maxOps: 1000 }), 'E_CHECKPOINT_CORRUPT', 'container items', /more than 30 items/);
  // The defaults hold a deep mark bomb and a DUP bomb quickly.
  const markBomb = Buffer.concat([Buffer.from([0x80, 2]), Buffer.alloc(200_000, 0x28), Buffer.from([0x2e])]);
  const dupBomb = Buffer.concat([Buffer.from([0x80, 2, 0x4e]), Buffer.alloc(2_000_000, 0x32), Buffer.from([0x2e])]);
  const t0 = performance.now();
  throwsCode(t, () => load(markBomb), 'E_CHECKPOINT_CORRUPT', '200k nested MARKs', /MARKs nest/);
  throwsCode(t, () => load(dupBomb), 'E_CHECKPOINT_CORRUPT', '2M DUPs', /stack exceeds/);
  t.ok(performance.now() - t0 < 5000, `bombs rejected in ${(performance.now() - t0).toFixed(0)} ms`);
  // A list that contains itself is just a value; no hang.
  const cyclic = load(P().proto(2).raw(0x5d).binput(0).binget(0).raw(0x61).stop().bytes()) as unknown[];
  t.equal(cyclic[0], cyclic, 'self-referencing list');
  const tuple = load(P().proto(2).int(1).raw(0x85).stop().bytes());
  t.ok(tuple instanceof PyTuple);
  t.end();
});
