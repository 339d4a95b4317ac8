/**
 * The allow list that turns a torch.save pickle into plain tensor references. Only what a state dict needs
 * is accepted: OrderedDict, the tensor/parameter rebuild functions, storage types (as names, never called)
 * and ('storage', type, key, location, numel) persistent ids. Any other global is E_CHECKPOINT_UNSAFE.
 */
import { ClipError } from '../errors.js';
import type { TensorDType } from '../manifest.js';
import { PyDict, PyTuple, type UnpickleHooks } from './pickle.js';

export class StorageRef {
  constructor(
    readonly dtype: TensorDType,
    readonly key: string,
    readonly location: string,
    /** Elements of `dtype` in the storage. */
    readonly numel: number,
  ) {}
}

export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly strides: number[],
  ) {}
}

/** torch.<X>Storage -> dtype. These are only ever names inside persistent ids. */
export const STORAGE_DTYPES: Record<string, TensorDType> = {
  'torch.FloatStorage': 'F32',
  'torch.HalfStorage': 'F16',
  'torch.BFloat16Storage': 'BF16',
  'torch.DoubleStorage': 'F64',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
};

/** Callables we interpret (never import): see `call` below for what each does. */
const CALLABLES = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  // Tensor subclasses or tensors carrying Python attributes: (func, type, args, state) -> func(*args).
  'torch._tensor._rebuild_from_type_v2',
  // How protocol 2 pickles `bytes`: _codecs.encode(str, 'latin1').
  '_codecs.encode',
]);

/** Types that may appear as the `new_type` of _rebuild_from_type_v2. */
const TYPES = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter']);

class Global {
  constructor(readonly qualified: string) {}
}

const MAX_NDIM = 8;

export function torchHooks(what: string): UnpickleHooks {
  const bad = (why: string): never => {
    throw new ClipError('E_CHECKPOINT_CORRUPT', `${what}: invalid torch pickle: ${why}`);
  };
  const int = (v: unknown, name: string): number =>
    typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad(`${name} is not a non-negative integer`);
  const ints = (v: unknown, name: string): number[] => {
    const items = v instanceof PyTuple ? v.items : Array.isArray(v) ? v : bad(`${name} is not a tuple`);
    if (items.length > MAX_NDIM) bad(`${name} has ${items.length} dimensions (at most ${MAX_NDIM})`);
    return items.map((x, i) => int(x, `${name}[${i}]`));
  };

  const call = (fn: unknown, args: readonly unknown[], nested = false): unknown => {
    if (!(fn instanceof Global)) return bad('calls something that is not a function');
    if (STORAGE_DTYPES[fn.qualified] || TYPES.has(fn.qualified)) {
      throw new ClipError('E_CHECKPOINT_UNSAFE', `${what}: pickle constructs ${fn.qualified} directly; only state dicts of tensors are allowed`);
    }
    switch (fn.qualified) {
      case 'collections.OrderedDict': {
        const d = new PyDict();
        if (args.length === 0) return d;
        const pairs = args.length === 1 ? (Array.isArray(args[0]) ? args[0] : args[0] instanceof PyTuple ? args[0].items : null) : null;
        if (!pairs) return bad('OrderedDict called with unsupported arguments');
        for (const p of pairs) {
          if (!(p instanceof PyTuple) || p.items.length !== 2) bad('OrderedDict item is not a pair');
          d.map.set((p as PyTuple).items[0], (p as PyTuple).items[1]);
        }
        return d;
      }
      case 'torch._utils._rebuild_tensor_v2': {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        if (args.length !== 6 && args.length !== 7) bad(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
        const [storage, offset, size, stride] = args;
        if (!(storage instanceof StorageRef)) return bad('_rebuild_tensor_v2 storage is not a storage reference');
        const shape = ints(size, 'tensor size');
        const strides = ints(stride, 'tensor stride');
        if (shape.length !== strides.length) bad(`tensor size [${shape}] and stride [${strides}] differ in length`);
        return new TensorRef(storage, int(offset, 'storage offset'), shape, strides);
      }
      case 'torch._utils._rebuild_parameter': // (data, requires_grad, backward_hooks)
      case 'torch._utils._rebuild_parameter_with_state': // (data, requires_grad, backward_hooks, state)
        if (args.length !== (fn.qualified.endsWith('state') ? 4 : 3)) bad(`${fn.qualified} got ${args.length} arguments`);
        return args[0] instanceof TensorRef ? args[0] : bad('a parameter wraps something that is not a tensor');
      case 'torch._tensor._rebuild_from_type_v2': {
        if (nested || args.length !== 4) return bad('unsupported _rebuild_from_type_v2 call');
        const [func, type, inner] = args;
        if (!(type instanceof Global) || !TYPES.has(type.qualified)) bad('_rebuild_from_type_v2 with an unsupported type');
        if (!(inner instanceof PyTuple)) return bad('_rebuild_from_type_v2 arguments are not a tuple');
        return call(func, inner.items, true);
      }
      case '_codecs.encode': {
        const [s, enc] = args;
        if (typeof s !== 'string' || (enc !== 'latin1' && enc !== 'latin-1')) return bad('unsupported _codecs.encode call');
        return Uint8Array.from(Buffer.from(s, 'latin1'));
      }
      default:
        return bad(`${fn.qualified} is not callable`);
    }
  };

  return {
    findGlobal(module, name) {
      const qualified = `${module}.${name}`;
      if (STORAGE_DTYPES[qualified] || CALLABLES.has(qualified) || TYPES.has(qualified)) return new Global(qualified);
      const shown = qualified.length > 200 ? `${qualified.slice(0, 200)}...` : qualified;
      throw new ClipError(
        'E_CHECKPOINT_UNSAFE',
        `${what}: refusing to unpickle global ${JSON.stringify(shown)}: only plain state dicts of tensors are allowed (this pickle would import or run arbitrary Python)`,
      );
    },
    call: (fn, args) => call(fn, args),
    build(obj, state) {
      if (obj instanceof PyDict) {
        obj.state = state; // OrderedDict._metadata: ignored
        return obj;
      }
      return bad('BUILD on an object other than a dict');
    },
    persistentLoad(pid) {
      if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
        return bad("persistent id is not ('storage', type, key, location, numel)");
      }
      const [, type, key, location, n] = pid.items;
      const dtype = type instanceof Global ? STORAGE_DTYPES[type.qualified] : undefined;
      if (!dtype) return bad('persistent id names an unknown storage type');
      if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key) || key.startsWith('.')) return bad('storage key is not a plain name');
      if (typeof location !== 'string') return bad('storage location is not a string');
      return new StorageRef(dtype, key, location, int(n, 'storage size'));
    },
  };
}
