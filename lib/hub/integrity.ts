/** What a blob's name promises: an LFS etag is the file's sha256; a git etag is its git blob sha1. */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

export type Digest = { kind: 'sha256' | 'git-sha1'; hex: string } | undefined;

export function expectedDigest(etag: string): Digest {
  if (/^[0-9a-f]{64}$/.test(etag)) return { kind: 'sha256', hex: etag };
  if (/^[0-9a-f]{40}$/.test(etag)) return { kind: 'git-sha1', hex: etag };
  return undefined;
}

/** A hash for the digest kind; git's blob sha1 covers the header `blob <size>\0` too. */
export function newHash(digest: Digest, size: number): Hash | undefined {
  if (!digest) return undefined;
  if (digest.kind === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

/** Feeds the first `length` bytes of `file` to `hash`. */
export async function hashPrefix(hash: Hash, file: string, length: number, onBytes?: (n: number) => void): Promise<void> {
  if (length <= 0) return;
  let done = 0;
  for await (const chunk of createReadStream(file, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    done += (chunk as Buffer).length;
    onBytes?.(done);
  }
}

/** Whether a whole file matches its etag's digest (true when the etag promises none). */
export async function fileMatches(file: string, etag: string, size: number, onBytes?: (n: number) => void): Promise<boolean> {
  const digest = expectedDigest(etag);
  const hash = newHash(digest, size);
  if (!hash || !digest) return true;
  await hashPrefix(hash, file, size, onBytes);
  return hash.digest('hex') === digest.hex;
}
