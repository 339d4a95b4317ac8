/**
 * What determines embed-dir's output, so a journal is resumed only by the same model: the SHA-256 of the
 * weights' bytes (not the spelling of --model), the architecture, preprocessing, backend, device, precision
 * and the library's version. Hashing reads the whole checkpoint once (about 1.3 s per GB here); a journal or index
 * records the file's size, inode, mtime and ctime beside the hash, and a file whose stat still matches is not
 * hashed again. Any write, copy or rename over the file changes its ctime, so a swap is always rehashed.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { findPackageRoot } from '../backends/package-root.js';
import type { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import { FILE_LIMITS, openRegularFile, readRegularFileSync } from '../fs/read-file.js';
import { type ModelPaths, resolveModelFiles } from '../model-dir.js';

/** A checkpoint file's content hash and the stat it was computed for. */
export interface WeightsFingerprint {
  sha256: string;
  size: number;
  /** Nanoseconds, as decimal strings (exact). */
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

const CHUNK = 8 * 1024 * 1024;

function sameStat(a: WeightsFingerprint, b: Omit<WeightsFingerprint, 'sha256'>): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

/** The fingerprint of `file`: a known one whose stat still matches, else a fresh SHA-256 of every byte. */
export async function weightsFingerprint(file: string, known: readonly (WeightsFingerprint | undefined)[] = []): Promise<WeightsFingerprint> {
  const { handle } = await openRegularFile(file, 'checkpoint');
  try {
    const st = await handle.stat({ bigint: true });
    const now = { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString(), ino: st.ino.toString() };
    const reuse = known.find((k) => k !== undefined && typeof k.sha256 === 'string' && sameStat(k, now));
    if (reuse) return { ...now, sha256: reuse.sha256 };
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let position = 0; ; ) {
      const { bytesRead } = await handle.read(buf, 0, CHUNK, position);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      position += bytesRead;
    }
    return { ...now, sha256: hash.digest('hex') };
  } catch (err) {
    if (err instanceof ClipError) throw err;
    throw new ClipError('E_IO', `cannot read checkpoint ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  } finally {
    await handle.close();
  }
}

/** The weights file of a model given as Clip.load takes it from disk (a directory or explicit paths). */
export function weightsFile(model: string | ModelPaths): string {
  return resolveModelFiles(model).weights;
}

let version: string | undefined;

/** This library's version (package.json), part of every journal key: another version may embed differently. */
export function libraryVersion(): string {
  if (version !== undefined) return version;
  const root = findPackageRoot();
  try {
    const manifest = root && JSON.parse(readRegularFileSync(path.join(root, 'package.json'), { what: 'package.json', maxBytes: FILE_LIMITS.config }).toString('utf8'));
    version = typeof manifest?.version === 'string' ? (manifest.version as string) : 'unknown';
  } catch {
    version = 'unknown';
  }
  return version;
}

/** The settings of a model that fix its image embeddings, for a journal key (weights by content). */
export function modelKey(clip: Clip, weights: WeightsFingerprint): Record<string, string | number> {
  return {
    weights: weights.sha256,
    arch: createHash('sha256').update(JSON.stringify(clip.arch)).digest('hex'),
    preprocess: JSON.stringify(clip.preprocess),
    backend: clip.backend,
    device: clip.device,
    precision: clip.precision,
    dim: clip.embedDim,
    library: libraryVersion(),
  };
}
