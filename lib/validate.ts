/**
 * Argument checks of the public API, in one place and one message form (as sharp's `is` helpers word them):
 * "Expected <what> for <name> but received <value> of type <type>", always ClipError E_INVALID_ARGUMENT.
 * Values are never coerced: '320', 1.5 and NaN are not token ids. Browser-safe (no Node imports).
 */
import { ClipError } from './errors.js';

/** How a received value reads in a message: short, typed, never the whole of a large input. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of ${value.byteLength} bytes`;
  if (typeof value === 'string') return `${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)} of type string`;
  if (typeof value === 'object') return `an object of type ${value.constructor?.name ?? 'Object'}`;
  if (typeof value === 'function') return 'a function';
  return `${String(value)} of type ${typeof value}`;
}

/** `name` may lead with the input it belongs to ("input #2: width"): the message then starts with it. */
export function invalid(expected: string, name: string, value: unknown, subject?: string): ClipError {
  return mismatch(expected, name, describeValue(value), subject);
}

/** The same form when what was received is best said in words ("2 rows"). */
export function mismatch(expected: string, name: string, received: string, subject?: string): ClipError {
  const at = name.lastIndexOf(': ');
  const [lead, field] = at < 0 ? ['', name] : [name.slice(0, at + 2), name.slice(at + 2)];
  return new ClipError('E_INVALID_ARGUMENT', `${lead}Expected ${expected} for ${field} but received ${received}`, subject ? { subject } : {});
}

export const is = {
  defined: (v: unknown): boolean => v !== undefined && v !== null,
  plainObject: (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v),
  fn: (v: unknown): v is (...args: never[]) => unknown => typeof v === 'function',
  bool: (v: unknown): v is boolean => typeof v === 'boolean',
  string: (v: unknown): v is string => typeof v === 'string',
  integer: (v: unknown): v is number => Number.isInteger(v),
  finite: (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v),
  inRange: (v: number, lo: number, hi: number): boolean => v >= lo && v <= hi,
  inArray: <T>(v: unknown, list: readonly T[]): v is T => list.includes(v as T),
};

/** An options argument: undefined gives {}; anything but a plain object is refused. */
export function optionsObject<T extends object>(value: T | undefined, name: string): T {
  if (value === undefined) return {} as T;
  if (!is.plainObject(value)) throw invalid('an options object', name, value);
  return value;
}

export function integerIn(value: unknown, name: string, lo: number, hi: number): number {
  if (!is.integer(value) || !is.inRange(value, lo, hi)) throw invalid(`an integer between ${lo} and ${hi}`, name, value);
  return value;
}

export function optionalIntegerIn(value: unknown, name: string, lo: number, hi: number, fallback: number): number {
  return value === undefined ? fallback : integerIn(value, name, lo, hi);
}

/** A path: a non-empty string without NUL bytes, at most 4000 characters. */
export function pathString(value: unknown, name: string, what = 'a path'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 4000 || value.includes('\0')) throw invalid(what, name, value);
  return value;
}

export function oneOf<T extends string>(value: unknown, name: string, choices: readonly T[]): T {
  if (!is.inArray(value, choices)) throw invalid(`one of ${choices.map((c) => `'${c}'`).join(', ')}`, name, value);
  return value;
}

export function optionalBool(value: unknown, name: string): boolean | undefined {
  if (value !== undefined && !is.bool(value)) throw invalid('a boolean', name, value);
  return value;
}

export function optionalFunction<F>(value: F | undefined, name: string): F | undefined {
  if (value !== undefined && !is.fn(value)) throw invalid('a function', name, value);
  return value;
}

/** A non-empty array of strings, each at most maxLength characters. */
export function stringList(value: unknown, name: string, maxLength = Number.MAX_SAFE_INTEGER): string[] {
  if (!Array.isArray(value) || value.length === 0) throw invalid('a non-empty array of strings', name, value);
  value.forEach((s, i) => {
    if (!is.string(s)) throw invalid('a string', `${name}[${i}]`, s);
    if (s.length > maxLength) throw invalid(`a string of at most ${maxLength} characters`, `${name}[${i}]`, s);
  });
  return value as string[];
}

/** Every value finite (NaN and infinities refused: the policy for pixels). */
export function finiteFloats(data: Float32Array, name: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw invalid('finite numbers', `${name}[${i}]`, data[i]);
  }
}

/** One row of token ids: integers in [0, vocabSize) (never strings, fractions or NaN coerced). */
export function tokenRow(row: unknown, name: string, contextLength: number, vocabSize: number): readonly number[] {
  if (!Array.isArray(row)) throw invalid('an array of token ids', name, row);
  if (row.length > contextLength) throw invalid(`at most ${contextLength} token ids (the context length)`, name, row);
  for (let i = 0; i < row.length; i++) {
    const id = row[i];
    if (!is.integer(id) || id < 0 || id >= vocabSize) throw invalid(`an integer token id between 0 and ${vocabSize - 1}`, `${name}[${i}]`, id);
  }
  return row as number[];
}
