/**
 * A restricted unpickler: it interprets pickle opcodes (protocols 0-5) into plain values and never runs code.
 * Globals, calls (REDUCE/NEWOBJ/INST/OBJ), BUILD and persistent ids are handed to `hooks`, which decide what
 * is allowed. Everything is bounded (opcodes, stack, marks, memo, string and integer sizes), so hostile or
 * truncated input ends in E_CHECKPOINT_CORRUPT (or the hooks' E_CHECKPOINT_UNSAFE), never a hang or a crash.
 *
 * Values: None -> null, bool, int -> number (bigint when beyond 2^53), float -> number, str -> string,
 * bytes/bytearray -> Uint8Array, list -> Array, tuple -> PyTuple, dict -> PyDict, set -> PySet.
 */
import { ClipError, isClipError } from '../errors.js';

export class PyTuple {
  constructor(readonly items: readonly unknown[]) {}
}

export class PyDict {
  readonly map = new Map<unknown, unknown>();
  /** State set by BUILD (an OrderedDict's `_metadata`), kept but unused. */
  state: unknown = undefined;
}

export class PySet {
  readonly items: unknown[] = [];
  constructor(readonly frozen: boolean) {}
}

export interface UnpickleHooks {
  /** GLOBAL / STACK_GLOBAL / INST: return a token for an allowed global, or throw E_CHECKPOINT_UNSAFE. */
  findGlobal(module: string, name: string): unknown;
  /** REDUCE / NEWOBJ / INST / OBJ: apply an allowed callable to its arguments. */
  call(callable: unknown, args: readonly unknown[]): unknown;
  /** BUILD: return the object with `state` applied. */
  build(obj: unknown, state: unknown): unknown;
  /** PERSID / BINPERSID. */
  persistentLoad(pid: unknown): unknown;
}

export interface UnpickleLimits {
  maxOps: number;
  maxStack: number;
  maxMarks: number;
  maxMemo: number;
  /** Items put into lists, tuples, dicts and sets, all together (DUP + APPENDS cannot blow up memory). */
  maxItems: number;
  /** Longest str/bytes value, in bytes. */
  maxString: number;
}

export const DEFAULT_PICKLE_LIMITS: UnpickleLimits = {
  maxOps: 50_000_000,
  maxStack: 1 << 20,
  maxMarks: 10_000,
  maxMemo: 1 << 20,
  maxItems: 1 << 23,
  maxString: 16 * 1024 * 1024,
};

/** Longest text line (protocol-0 numbers, GLOBAL names, PUT/GET indices). */
const MAX_LINE = 4096;
/** Longest LONG1/LONG4/LONG integer, in bytes (a state dict needs 8 at most). */
const MAX_LONG_BYTES = 256;

const utf8 = new TextDecoder('utf-8', { fatal: true });

class PickleFault extends Error {}

export function unpickle(data: Uint8Array, hooks: UnpickleHooks, what: string, limits: UnpickleLimits = DEFAULT_PICKLE_LIMITS): unknown {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let itemCount = 0;

  const fail = (why: string): never => {
    throw new PickleFault(why);
  };
  const need = (n: number): number => {
    if (n < 0 || n > buf.length - pos) fail(`needs ${n} more bytes but the pickle ends (truncated?)`);
    const at = pos;
    pos += n;
    return at;
  };
  const line = (max = MAX_LINE): string => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0 || end - pos > max) fail(end < 0 ? 'text argument has no newline (truncated?)' : 'text argument is too long');
    const s = buf.toString('latin1', pos, end);
    pos = end + 1;
    return s;
  };
  const bytes = (n: number): Uint8Array => {
    if (n > limits.maxString) fail(`a ${n}-byte string exceeds the ${limits.maxString}-byte limit`);
    const at = need(n);
    return buf.subarray(at, at + n);
  };
  const text = (n: number): string => {
    const b = bytes(n);
    try {
      return utf8.decode(b);
    } catch {
      return fail('string is not valid UTF-8');
    }
  };
  const u64 = (): number => {
    const v = buf.readBigUInt64LE(need(8));
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? fail(`length ${v} is too large`) : Number(v);
  };
  const push = (v: unknown): void => {
    if (stack.length >= limits.maxStack) fail(`stack exceeds ${limits.maxStack} items`);
    stack.push(v);
  };
  const base = (): number => (marks.length ? marks[marks.length - 1] : 0);
  const pop = (): unknown => (stack.length > base() ? stack.pop() : fail('stack underflow'));
  const top = (): unknown => (stack.length > base() ? stack[stack.length - 1] : fail('stack underflow'));
  const popMark = (): unknown[] => {
    if (!marks.length) fail('no MARK to pop to');
    return stack.splice(marks.pop()!);
  };
  const put = (index: number): void => {
    if (!memo.has(index) && memo.size >= limits.maxMemo) fail(`memo exceeds ${limits.maxMemo} entries`);
    memo.set(index, top());
  };
  const get = (index: number): void => {
    if (!memo.has(index)) fail(`memo key ${index} is missing`);
    push(memo.get(index));
  };
  const decimal = (s: string): number | bigint => {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[+-]?\d+$/.test(t)) fail(`invalid integer ${JSON.stringify(s.slice(0, 40))}`);
    return small(BigInt(t));
  };
  const index = (s: string): number => {
    const v = decimal(s);
    return typeof v === 'number' && v >= 0 ? v : fail('invalid memo index');
  };
  const grow = <T extends unknown[]>(xs: T): T => {
    itemCount += xs.length;
    if (itemCount > limits.maxItems) fail(`containers hold more than ${limits.maxItems} items`);
    return xs;
  };
  const tuple = (xs: unknown[]): PyTuple => new PyTuple(grow(xs));
  const asTuple = (v: unknown): readonly unknown[] => (v instanceof PyTuple ? v.items : fail('expected an argument tuple'));
  const addPairs = (dict: unknown, xs: unknown[]): void => {
    if (!(dict instanceof PyDict)) fail('SETITEM(S) on something that is not a dict');
    if (xs.length % 2) fail('odd number of items for a dict');
    grow(xs);
    for (let i = 0; i < xs.length; i += 2) (dict as PyDict).map.set(xs[i], xs[i + 1]);
  };
  const appendAll = (list: unknown, xs: unknown[]): void => {
    if (!Array.isArray(list)) fail('APPEND(S) on something that is not a list');
    for (const item of grow(xs)) (list as unknown[]).push(item);
  };
  const str = (v: unknown): string => (typeof v === 'string' ? v : fail('STACK_GLOBAL needs two strings'));

  try {
    for (let ops = 0; ; ops++) {
      if (ops >= limits.maxOps) fail(`more than ${limits.maxOps} opcodes`);
      const at = pos;
      const op = buf[need(1)];
      switch (op) {
        case 0x80: { // PROTO
          const v = buf[need(1)];
          if (v > 5) fail(`unsupported pickle protocol ${v}`);
          break;
        }
        case 0x95: // FRAME: advisory length of what follows
          if (u64() > buf.length - pos) fail('frame runs past the end (truncated?)');
          break;
        case 0x2e: // STOP
          return pop();
        case 0x28: // MARK
          if (marks.length >= limits.maxMarks) fail(`MARKs nest deeper than ${limits.maxMarks}`);
          marks.push(stack.length);
          break;
        case 0x30: // POP (pops a MARK when the stack above it is empty)
          if (stack.length === base() && marks.length) marks.pop();
          else pop();
          break;
        case 0x31: // POP_MARK
          popMark();
          break;
        case 0x32: // DUP
          push(top());
          break;
        case 0x4e: push(null); break; // NONE
        case 0x88: push(true); break; // NEWTRUE
        case 0x89: push(false); break; // NEWFALSE
        case 0x4b: push(buf[need(1)]); break; // BININT1
        case 0x4d: push(buf.readUInt16LE(need(2))); break; // BININT2
        case 0x4a: push(buf.readInt32LE(need(4))); break; // BININT
        case 0x8a: push(longBytes(bytesForLong(buf[need(1)]))); break; // LONG1
        case 0x8b: push(longBytes(bytesForLong(buf.readInt32LE(need(4))))); break; // LONG4
        case 0x49: { // INT (text; I01/I00 are True/False)
          const s = line();
          push(s === '01' ? true : s === '00' ? false : decimal(s));
          break;
        }
        case 0x4c: push(decimal(line())); break; // LONG (text)
        case 0x46: { // FLOAT (text)
          const s = line().trim();
          const v = Number(s);
          if (s === '' || (Number.isNaN(v) && !/^[+-]?nan$/i.test(s))) fail(`invalid float ${JSON.stringify(s.slice(0, 40))}`);
          push(v);
          break;
        }
        case 0x47: push(buf.readDoubleBE(need(8))); break; // BINFLOAT
        case 0x58: push(text(buf.readUInt32LE(need(4)))); break; // BINUNICODE
        case 0x8c: push(text(buf[need(1)])); break; // SHORT_BINUNICODE
        case 0x8d: push(text(u64())); break; // BINUNICODE8
        case 0x56: push(rawUnicodeEscape(line(limits.maxString))); break; // UNICODE (text)
        case 0x53: push(pythonStringLiteral(line(limits.maxString))); break; // STRING (text, quoted)
        case 0x54: { // BINSTRING (py2 str, decoded as latin-1)
          const n = buf.readInt32LE(need(4));
          if (n < 0) fail('negative string length');
          push(Buffer.from(bytes(n)).toString('latin1'));
          break;
        }
        case 0x55: push(Buffer.from(bytes(buf[need(1)])).toString('latin1')); break; // SHORT_BINSTRING
        case 0x42: push(Uint8Array.from(bytes(buf.readUInt32LE(need(4))))); break; // BINBYTES
        case 0x43: push(Uint8Array.from(bytes(buf[need(1)]))); break; // SHORT_BINBYTES
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          push(Uint8Array.from(bytes(u64())));
          break;
        case 0x5d: push([]); break; // EMPTY_LIST
        case 0x61: { // APPEND
          const v = pop();
          appendAll(top(), [v]);
          break;
        }
        case 0x65: { // APPENDS
          const items = popMark();
          appendAll(top(), items);
          break;
        }
        case 0x6c: push(grow(popMark())); break; // LIST
        case 0x29: push(tuple([])); break; // EMPTY_TUPLE
        case 0x74: push(tuple(popMark())); break; // TUPLE
        case 0x85: push(tuple([pop()])); break; // TUPLE1
        case 0x86: { // TUPLE2
          const b = pop();
          push(tuple([pop(), b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = pop();
          const b = pop();
          push(tuple([pop(), b, c]));
          break;
        }
        case 0x7d: push(new PyDict()); break; // EMPTY_DICT
        case 0x64: { // DICT
          const d = new PyDict();
          addPairs(d, popMark());
          push(d);
          break;
        }
        case 0x73: { // SETITEM
          const v = pop();
          const k = pop();
          addPairs(top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = popMark();
          addPairs(top(), items);
          break;
        }
        case 0x8f: push(new PySet(false)); break; // EMPTY_SET
        case 0x90: { // ADDITEMS
          const xs = grow(popMark());
          const s = top();
          if (!(s instanceof PySet) || s.frozen) fail('ADDITEMS on something that is not a set');
          for (const item of xs) (s as PySet).items.push(item);
          break;
        }
        case 0x91: { // FROZENSET
          const s = new PySet(true);
          for (const item of grow(popMark())) s.items.push(item);
          push(s);
          break;
        }
        case 0x67: get(index(line())); break; // GET
        case 0x68: get(buf[need(1)]); break; // BINGET
        case 0x6a: get(buf.readUInt32LE(need(4))); break; // LONG_BINGET
        case 0x70: put(index(line())); break; // PUT
        case 0x71: put(buf[need(1)]); break; // BINPUT
        case 0x72: put(buf.readUInt32LE(need(4))); break; // LONG_BINPUT
        case 0x94: put(memo.size); break; // MEMOIZE
        case 0x63: { // GLOBAL
          const module = line();
          push(hooks.findGlobal(module, line()));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = str(pop());
          push(hooks.findGlobal(str(pop()), name));
          break;
        }
        case 0x52: { // REDUCE
          const args = asTuple(pop());
          push(hooks.call(pop(), args));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = asTuple(pop());
          push(hooks.call(pop(), args));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = pop();
          const args = asTuple(pop());
          if (!(kwargs instanceof PyDict) || kwargs.map.size) fail('NEWOBJ_EX with keyword arguments is not supported');
          push(hooks.call(pop(), args));
          break;
        }
        case 0x69: { // INST
          const module = line();
          const cls = hooks.findGlobal(module, line());
          push(hooks.call(cls, popMark()));
          break;
        }
        case 0x6f: { // OBJ
          const items = popMark();
          if (!items.length) fail('OBJ without a class');
          push(hooks.call(items[0], items.slice(1)));
          break;
        }
        case 0x62: { // BUILD
          const state = pop();
          const obj = pop();
          push(hooks.build(obj, state));
          break;
        }
        case 0x50: push(hooks.persistentLoad(line())); break; // PERSID
        case 0x51: push(hooks.persistentLoad(pop())); break; // BINPERSID
        case 0x82: // EXT1
        case 0x83: // EXT2
        case 0x84: // EXT4
          throw new ClipError('E_CHECKPOINT_UNSAFE', `${what}: pickle uses the copyreg extension registry (opcode 0x${op.toString(16)} at byte ${at}), which can name any global; refused`);
        case 0x97: // NEXT_BUFFER
        case 0x98: // READONLY_BUFFER
          fail('out-of-band buffers (pickle protocol 5) are not supported');
          break;
        default:
          fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
      }
    }
  } catch (err) {
    if (isClipError(err)) throw err;
    const why = err instanceof PickleFault ? err.message : `unexpected failure: ${(err as Error)?.message ?? String(err)}`;
    throw new ClipError('E_CHECKPOINT_CORRUPT', `${what}: invalid pickle: ${why} (near byte ${pos})`, { cause: err });
  }

  function bytesForLong(n: number): Uint8Array {
    if (n < 0) fail('negative integer length');
    if (n > MAX_LONG_BYTES) fail(`a ${n}-byte integer exceeds the ${MAX_LONG_BYTES}-byte limit`);
    const at = need(n);
    return buf.subarray(at, at + n);
  }
}

/** Little-endian two's complement bytes -> number (or bigint beyond 2^53). */
function longBytes(b: Uint8Array): number | bigint {
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b.length && b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return small(v);
}

function small(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Protocol-0 UNICODE argument: latin-1 text with \uXXXX and \UXXXXXXXX escapes. */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (m, u4: string | undefined, u8: string | undefined) => {
    const cp = parseInt(u4 ?? u8 ?? '', 16);
    if (cp > 0x10ffff) throw new PickleFault('invalid \\U escape');
    return String.fromCodePoint(cp);
  });
}

/** Protocol-0 STRING argument: a quoted Python 2 string literal (common escapes), read as latin-1. */
function pythonStringLiteral(s: string): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) throw new PickleFault('STRING argument is not quoted');
  const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v' };
  return s.slice(1, -1).replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_m, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8) & 0xff);
    return simple[e] ?? `\\${e}`;
  });
}
