/**
 * Reads a webdataset tar shard as a stream (nothing is extracted to disk) and groups its members into samples
 * the way webdataset does: a member `dir/abc.seg.jpg` belongs to the sample keyed `dir/abc` (the path up to the
 * first dot of the basename) under the field `seg.jpg`; consecutive members with the same key form one sample.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import tar from 'tar-stream';
import { ClipError } from '../errors.js';

export interface Sample {
  /** The sample key: the member path up to the first dot of its basename. */
  key: string;
  /** Position of the sample in the shard (0-based). */
  index: number;
  /** Member bytes by field name (the part after the first dot, as written in the tar). */
  fields: Map<string, Buffer>;
  /** Why the sample cannot be used, when something is wrong with its members (too large, duplicated). */
  problem?: { code: 'E_INPUT_TOO_LARGE' | 'E_INVALID_ARGUMENT'; message: string };
}

export interface ReadSamplesOptions {
  /** Members larger than this are not read (their sample is marked broken); default 64 MiB. */
  maxMemberBytes?: number;
}

export const DEFAULT_MAX_MEMBER_BYTES = 64 * 1024 * 1024;

/** `dir/abc.seg.jpg` -> ['dir/abc', 'seg.jpg']; undefined for a name whose basename has no dot. */
export function splitMemberName(name: string): [key: string, field: string] | undefined {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot <= slash + 1 || dot === name.length - 1) return undefined; // no dot, a leading dot, or a trailing one
  return [name.slice(0, dot), name.slice(dot + 1)];
}

/** webdataset skips top-level `__name__` members (its own metadata). */
function isMetaMember(name: string): boolean {
  return !name.includes('/') && name.startsWith('__') && name.endsWith('__');
}

async function readEntry(entry: AsyncIterable<Buffer>, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of entry) {
    length += chunk.length;
    if (length > size) throw new ClipError('E_IO', `a tar member holds more bytes than its header says (${size})`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}

/**
 * The samples of a shard, in order. A malformed or truncated tar rejects with E_IO (E_NOT_FOUND if there is
 * no such file); problems inside a sample are reported on the sample, never thrown.
 */
export async function* readSamples(file: string, options: ReadSamplesOptions = {}): AsyncGenerator<Sample> {
  const maxMemberBytes = options.maxMemberBytes ?? DEFAULT_MAX_MEMBER_BYTES;
  try {
    if (!(await stat(file)).isFile()) throw new ClipError('E_INVALID_ARGUMENT', `${file} is not a file`, { subject: file });
  } catch (err) {
    if (err instanceof ClipError) throw err;
    throw new ClipError('E_NOT_FOUND', `no shard ${file}`, { subject: file, cause: err });
  }
  const input = createReadStream(file);
  const extract = tar.extract();
  input.on('error', (err) => extract.destroy(err));
  input.pipe(extract);
  let current: Sample | undefined;
  let index = 0;
  try {
    for await (const entry of extract) {
      const { name, type, size = 0 } = entry.header;
      const split = type === 'file' || type === 'contiguous-file' ? splitMemberName(name) : undefined;
      if (split === undefined || isMetaMember(name)) {
        entry.resume();
        continue;
      }
      const [key, field] = split;
      if (current === undefined || current.key !== key) {
        if (current !== undefined) yield current;
        current = { key, index: index++, fields: new Map() };
      }
      if (size > maxMemberBytes) {
        entry.resume();
        current.problem ??= { code: 'E_INPUT_TOO_LARGE', message: `member ${name} has ${size} bytes, over the limit of ${maxMemberBytes}` };
        continue;
      }
      const bytes = await readEntry(entry as AsyncIterable<Buffer>, size);
      if (current.fields.has(field)) current.problem ??= { code: 'E_INVALID_ARGUMENT', message: `duplicate member ${name}` };
      else current.fields.set(field, bytes);
    }
  } catch (err) {
    if (err instanceof ClipError) throw new ClipError(err.code, `${file}: ${err.message}`, { subject: file, cause: err });
    throw new ClipError('E_IO', `${file} is not a readable tar shard: ${(err as Error).message}`, { subject: file, cause: err });
  } finally {
    input.destroy();
    extract.destroy();
  }
  if (current !== undefined) yield current;
}
