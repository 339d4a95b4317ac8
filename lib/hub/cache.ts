/**
 * huggingface_hub's cache layout for one repo:
 *   <cache>/models--org--name/blobs/<etag>                      file contents, named by git sha1 or LFS sha256
 *   <cache>/models--org--name/refs/<revision>                   the commit sha a branch or tag pointed to
 *   <cache>/models--org--name/snapshots/<commit>/<file>         relative symlink to ../../blobs/<etag>
 *   <cache>/models--org--name/.no_exist/<commit>/<file>         empty marker: the file is absent at that commit
 *   <cache>/.locks/models--org--name/<etag>.lock                huggingface_hub's own lock (filelock)
 * Writes are atomic (temp file + rename) so readers never see half a ref or a missing pointer.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { HubError } from './errors.js';
import { COMMIT_SHA, SAFE_ETAG, isSafeRepoFile, repoFolderName } from './repo-id.js';

/** Names from a server become paths only through these checks (the callers validate first; this is the backstop). */
function checked(kind: 'commit' | 'etag' | 'file', name: string): string {
  const ok = kind === 'commit' ? COMMIT_SHA.test(name) : kind === 'etag' ? SAFE_ETAG.test(name) : isSafeRepoFile(name);
  if (!ok) throw new HubError('protocol', `refusing ${JSON.stringify(name.slice(0, 200))} as a ${kind} name in the cache: it could point outside it`, { subject: name });
  return name;
}

function tempName(file: string): string {
  return `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export class RepoCache {
  readonly root: string;
  readonly blobsDir: string;
  readonly locksDir: string;

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    this.root = path.join(cacheDir, repoFolderName(repoId));
    this.blobsDir = path.join(this.root, 'blobs');
    this.locksDir = path.join(cacheDir, '.locks', repoFolderName(repoId));
  }

  blobPath(etag: string): string {
    return path.join(this.blobsDir, checked('etag', etag));
  }

  incompletePath(etag: string): string {
    return `${this.blobPath(etag)}.incomplete`;
  }

  /** Our lock (a directory made by proper-lockfile), beside huggingface_hub's `<etag>.lock` file but not the same path. */
  lockPath(etag: string): string {
    return path.join(this.locksDir, `${checked('etag', etag)}.node.lock`);
  }

  snapshotDir(commit: string): string {
    return path.join(this.root, 'snapshots', checked('commit', commit));
  }

  pointerPath(commit: string, file: string): string {
    return path.join(this.snapshotDir(commit), ...checked('file', file).split('/'));
  }

  /** The commit a revision names: itself when it is a sha, else what refs/<revision> holds. */
  resolveCommit(revision: string): string | undefined {
    if (COMMIT_SHA.test(revision)) return revision;
    try {
      const sha = readFileSync(path.join(this.root, 'refs', ...revision.split('/')), 'utf8').trim();
      return COMMIT_SHA.test(sha) ? sha : undefined;
    } catch {
      return undefined;
    }
  }

  writeRef(revision: string, commit: string): void {
    checked('commit', commit);
    if (revision === commit) return;
    const ref = path.join(this.root, 'refs', ...revision.split('/'));
    if (this.resolveCommit(revision) === commit) return; // unchanged: leave a read-only cache alone
    mkdirSync(path.dirname(ref), { recursive: true });
    const tmp = tempName(ref);
    writeFileSync(tmp, commit);
    renameSync(tmp, ref);
  }

  /** Whether snapshots/<commit>/<file> resolves to an existing file. */
  has(commit: string, file: string): boolean {
    return existsSync(this.pointerPath(commit, file));
  }

  isKnownMissing(commit: string, file: string): boolean {
    return existsSync(this.missingMarker(commit, file));
  }

  markMissing(commit: string, file: string): void {
    const marker = this.missingMarker(commit, file);
    mkdirSync(path.dirname(marker), { recursive: true });
    writeFileSync(marker, '');
  }

  private missingMarker(commit: string, file: string): string {
    return path.join(this.root, '.no_exist', checked('commit', commit), ...checked('file', file).split('/'));
  }

  /** Points snapshots/<commit>/<file> at blobs/<etag> with a relative symlink (a copy where symlinks are refused). */
  link(etag: string, commit: string, file: string): void {
    const pointer = this.pointerPath(commit, file);
    const blob = this.blobPath(etag);
    mkdirSync(path.dirname(pointer), { recursive: true });
    const tmp = tempName(pointer);
    try {
      symlinkSync(path.relative(path.dirname(pointer), blob), tmp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP') throw err;
      copyFileSync(blob, tmp); // e.g. Windows without developer mode, as huggingface_hub does
    }
    renameSync(tmp, pointer);
  }

  /** The blob a snapshot pointer links to, when it is one of our symlinks. */
  blobOf(commit: string, file: string): { etag: string; path: string } | undefined {
    const pointer = this.pointerPath(commit, file);
    try {
      if (!lstatSync(pointer).isSymbolicLink()) return undefined;
    } catch {
      return undefined;
    }
    const target = path.resolve(path.dirname(pointer), readlinkSync(pointer));
    return path.dirname(target) === this.blobsDir ? { etag: path.basename(target), path: target } : undefined;
  }

  removeBlob(etag: string): void {
    rmSync(this.blobPath(etag), { force: true });
  }
}
