/**
 * Test-only writers: a pickle opcode builder, a zip writer (stored/deflate, optional forced ZIP64, torch's
 * 64-byte data alignment) and `torchZip`, which assembles a torch.save-style state-dict checkpoint.
 * Used to build valid and hostile checkpoints in temp folders (and by the bench, as a layout without data).
 */
import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../lib/checkpoint/io.js';
import { DTYPE_BYTES, type TensorDType, contiguousStrides, numel } from '../../lib/manifest.js';

export class PickleWriter {
  private readonly chunks: Buffer[] = [];

  raw(...bytes: Array<number | Uint8Array>): this {
    for (const b of bytes) this.chunks.push(typeof b === 'number' ? Buffer.from([b]) : Buffer.from(b));
    return this;
  }
  proto(v = 2): this {
    return this.raw(0x80, v);
  }
  global(module: string, name: string): this {
    return this.raw(0x63, Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }
  stackGlobal(module: string, name: string): this {
    return this.str(module, 'short').str(name, 'short').raw(0x93);
  }
  str(s: string, kind: 'bin' | 'short' | 'bin8' = 'bin'): this {
    const b = Buffer.from(s, 'utf8');
    if (kind === 'short') return this.raw(0x8c, b.length, b);
    if (kind === 'bin8') return this.raw(0x8d, u64(b.length), b);
    return this.raw(0x58, u32(b.length), b);
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(n);
      return this.raw(0x4a, b);
    }
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(n));
    return this.raw(0x8a, 8, b); // LONG1
  }
  tupleOf(items: number[]): this {
    if (items.length === 0) return this.raw(0x29);
    this.mark();
    for (const v of items) this.int(v);
    return this.raw(0x74);
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  binput(i: number): this {
    return this.raw(0x71, i);
  }
  binget(i: number): this {
    return this.raw(0x68, i);
  }
  newFalse(): this {
    return this.raw(0x89);
  }
  none(): this {
    return this.raw(0x4e);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

export const STORAGE_TYPE: Record<string, string> = {
  F32: 'FloatStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage', F64: 'DoubleStorage', I64: 'LongStorage',
  I32: 'IntStorage', I16: 'ShortStorage', I8: 'CharStorage', U8: 'ByteStorage', BOOL: 'BoolStorage',
};

export interface PickledTensor {
  name: string;
  dtype: TensorDType;
  shape: number[];
  strides?: number[];
  storageKey: string;
  storageOffset?: number;
  storageNumel: number;
}

export interface StatePickleOptions {
  /** Wrap as {'epoch': 3, 'state_dict': {...}} like an open_clip training checkpoint. */
  wrapper?: boolean;
  /** Prefix every name (e.g. 'module.'). */
  prefix?: string;
  /** Use protocol 4 opcodes (STACK_GLOBAL, SHORT_BINUNICODE, MEMOIZE, FRAME). */
  protocol4?: boolean;
  /** Wrap tensors in torch._utils._rebuild_parameter like nn.Parameter. */
  parameters?: boolean;
  /** Module names for the OrderedDict's `_metadata` ({name: {'version': 1}}), set by BUILD like torch does. */
  metadata?: string[];
}

/** A torch.save-like pickle of an OrderedDict state dict (protocol 2 by default, as torch writes). */
export function statePickle(tensors: readonly PickledTensor[], opts: StatePickleOptions = {}): Buffer {
  const p = new PickleWriter();
  const global = (m: string, n: string): PickleWriter => (opts.protocol4 ? p.stackGlobal(m, n) : p.global(m, n));
  const str = (s: string): PickleWriter => p.str(s, opts.protocol4 ? 'short' : 'bin');
  p.proto(opts.protocol4 ? 4 : 2);
  if (opts.wrapper) p.emptyDict().mark().str('epoch').int(3).str('state_dict');
  global('collections', 'OrderedDict').emptyTuple().reduce();
  p.mark();
  for (const t of tensors) {
    str(`${opts.prefix ?? ''}${t.name}`);
    if (opts.parameters) global('torch._utils', '_rebuild_parameter').mark();
    global('torch._utils', '_rebuild_tensor_v2');
    p.mark().mark();
    str('storage');
    global('torch', STORAGE_TYPE[t.dtype]);
    str(t.storageKey).str('cpu').int(t.storageNumel).tuple().binpersid();
    p.int(t.storageOffset ?? 0).tupleOf(t.shape).tupleOf(t.strides ?? contiguousStrides(t.shape)).newFalse();
    global('collections', 'OrderedDict').emptyTuple().reduce();
    p.tuple().reduce();
    if (opts.parameters) {
      p.newFalse(); // _rebuild_parameter(tensor, requires_grad=False, OrderedDict())
      global('collections', 'OrderedDict').emptyTuple().reduce();
      p.tuple().reduce();
    }
  }
  p.setitems();
  if (opts.metadata) {
    p.emptyDict().str('_metadata');
    global('collections', 'OrderedDict').emptyTuple().reduce().mark();
    for (const m of opts.metadata) str(m).emptyDict().str('version').int(1).setitem();
    p.setitems().setitem().build();
  }
  if (opts.wrapper) p.setitems();
  if (opts.protocol4) p.raw(0x94); // MEMOIZE at the end exercises the opcode
  return p.stop().bytes();
}

export interface ZipInput {
  name: string;
  data: Uint8Array;
  /** 0 stored (default), 8 deflate. */
  method?: 0 | 8;
}

export interface ZipLayoutEntry {
  name: string;
  size: number;
  crc: number;
  method: 0 | 8;
  compressedSize: number;
}

export interface ZipOptions {
  /** Force ZIP64 records and extra fields even when nothing needs them. */
  zip64?: boolean;
  /** Align entry data to this many bytes with an 'FB' padding extra field, like torch (default 64). */
  align?: number;
}

export interface ZipLayout {
  /** Headers (and small data) to write at absolute offsets; data regions not given here are left as holes. */
  chunks: Array<{ offset: number; bytes: Buffer }>;
  /** Where each entry's data starts. */
  dataOffsets: number[];
  localHeaderOffsets: number[];
  centralDirectoryOffset: number;
  totalSize: number;
}

/** Lays out a zip: local headers, data ranges, central directory and end records (ZIP64 when needed or forced). */
export function layoutZip(entries: readonly ZipLayoutEntry[], opts: ZipOptions = {}): ZipLayout {
  const align = opts.align ?? 64;
  const chunks: ZipLayout['chunks'] = [];
  const dataOffsets: number[] = [];
  const localHeaderOffsets: number[] = [];
  const central: Buffer[] = [];
  let pos = 0;
  const big = (n: number): boolean => n >= 0xffffffff;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const z64 = opts.zip64 || big(e.size) || big(e.compressedSize);
    const localZip64 = z64 ? Buffer.concat([u16(1), u16(16), u64(e.size), u64(e.compressedSize)]) : Buffer.alloc(0);
    let headerLength = 30 + name.length + localZip64.length;
    let pad = Buffer.alloc(0);
    if (align > 1) {
      const need = (align - ((pos + headerLength + 4) % align)) % align;
      pad = Buffer.concat([u16(0x4246), u16(need), Buffer.alloc(need, 0x5a)]); // 'FB' extra, 'Z' padding
      headerLength += pad.length;
    }
    const local = Buffer.concat([
      u32(0x04034b50), u16(z64 ? 45 : 20), u16(0), u16(e.method), u16(0), u16(0x21), u32(e.crc),
      u32(z64 ? 0xffffffff : e.compressedSize), u32(z64 ? 0xffffffff : e.size), u16(name.length), u16(localZip64.length + pad.length),
      name, localZip64, pad,
    ]);
    localHeaderOffsets.push(pos);
    chunks.push({ offset: pos, bytes: local });
    dataOffsets.push(pos + local.length);
    const cz64 = opts.zip64 || z64 || big(pos);
    const centralZip64 = cz64 ? Buffer.concat([u16(1), u16(24), u64(e.size), u64(e.compressedSize), u64(pos)]) : Buffer.alloc(0);
    central.push(
      Buffer.concat([
        u32(0x02014b50), u16(0x031e), u16(cz64 ? 45 : 20), u16(0), u16(e.method), u16(0), u16(0x21), u32(e.crc),
        u32(cz64 ? 0xffffffff : e.compressedSize), u32(cz64 ? 0xffffffff : e.size), u16(name.length), u16(centralZip64.length),
        u16(0), u16(0), u16(0), u32(0), u32(cz64 ? 0xffffffff : pos), name, centralZip64,
      ]),
    );
    pos += local.length + e.compressedSize;
  }
  const cd = Buffer.concat(central);
  const cdOffset = pos;
  chunks.push({ offset: pos, bytes: cd });
  pos += cd.length;
  const z64 = opts.zip64 || big(cdOffset) || big(cd.length) || entries.length >= 0xffff;
  const tail: Buffer[] = [];
  if (z64) {
    const recordAt = pos;
    tail.push(
      Buffer.concat([u32(0x06064b50), u64(44), u16(45), u16(45), u32(0), u32(0), u64(entries.length), u64(entries.length), u64(cd.length), u64(cdOffset)]),
      Buffer.concat([u32(0x07064b50), u32(0), u64(recordAt), u32(1)]),
    );
  }
  const count = z64 ? 0xffff : entries.length;
  tail.push(Buffer.concat([u32(0x06054b50), u16(0), u16(0), u16(count), u16(count), u32(z64 ? 0xffffffff : cd.length), u32(z64 ? 0xffffffff : cdOffset), u16(0)]));
  const end = Buffer.concat(tail);
  chunks.push({ offset: pos, bytes: end });
  pos += end.length;
  return { chunks, dataOffsets, localHeaderOffsets, centralDirectoryOffset: cdOffset, totalSize: pos };
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

/** Builds a whole zip in memory. */
export function writeZip(inputs: readonly ZipInput[], opts: ZipOptions = {}): { bytes: Buffer; layout: ZipLayout } {
  const payloads = inputs.map((i) => (i.method === 8 ? deflateRawSync(i.data) : Buffer.from(i.data)));
  const layout = layoutZip(
    inputs.map((i, k) => ({ name: i.name, size: i.data.length, crc: crc32(i.data), method: i.method ?? 0, compressedSize: payloads[k].length })),
    opts,
  );
  const out = Buffer.alloc(layout.totalSize);
  for (const c of layout.chunks) c.bytes.copy(out, c.offset);
  payloads.forEach((p, k) => p.copy(out, layout.dataOffsets[k]));
  return { bytes: out, layout };
}

export interface TensorInput {
  name: string;
  dtype: TensorDType;
  shape: number[];
  /** Raw little-endian bytes of the whole storage. */
  data: Uint8Array;
  strides?: number[];
  storageOffset?: number;
  /** Share a storage between tensors by giving the same key (the first one's data is written). */
  storageKey?: string;
}

export interface TorchZipOptions extends StatePickleOptions, ZipOptions {
  archive?: string;
  /** Deflate data.pkl (some writers do). */
  deflatePickle?: boolean;
  /** Replace the generated pickle. */
  pickle?: Uint8Array;
  /** Extra or replacement entries. */
  extraEntries?: ZipInput[];
}

/** A torch.save-style checkpoint: <archive>/data.pkl, <archive>/data/<key>, <archive>/version. */
export function torchZip(tensors: readonly TensorInput[], opts: TorchZipOptions = {}): { bytes: Buffer; layout: ZipLayout } {
  const archive = opts.archive ?? 'archive';
  const storages = new Map<string, Uint8Array>();
  const pickled: PickledTensor[] = tensors.map((t, i) => {
    const key = t.storageKey ?? String(i);
    if (!storages.has(key)) storages.set(key, t.data);
    return {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      strides: t.strides,
      storageKey: key,
      storageOffset: t.storageOffset,
      storageNumel: storages.get(key)!.length / DTYPE_BYTES[t.dtype],
    };
  });
  const pkl = opts.pickle ?? statePickle(pickled, opts);
  const entries: ZipInput[] = [{ name: `${archive}/data.pkl`, data: pkl, method: opts.deflatePickle ? 8 : 0 }];
  for (const [key, data] of storages) entries.push({ name: `${archive}/data/${key}`, data });
  entries.push({ name: `${archive}/version`, data: Buffer.from('3\n') }, ...(opts.extraEntries ?? []));
  return writeZip(entries, opts);
}

/** Float32 little-endian bytes of `values`. */
export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** A contiguous float32 tensor input with values 0, 1, 2, ... (times `scale`). */
export function rampTensor(name: string, shape: number[], scale = 1): TensorInput {
  return { name, dtype: 'F32', shape, data: f32Bytes(Array.from({ length: numel(shape) }, (_, i) => i * scale)) };
}
