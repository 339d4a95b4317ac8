/** The images under a folder (recursive, by extension, in a stable order) and `--shard i/n` selection. */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ClipError } from '../errors.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif'];

export interface Shard {
  index: number;
  count: number;
}

/** A file of the folder: its position in the full sorted list (the same on every machine) and relative path. */
export interface FileEntry {
  index: number;
  path: string;
}

/** A folder under the root that could not be listed: skipped and reported, like a file that cannot be read. */
export interface SkippedFolder {
  /** Relative to the root, '/'-separated, ending in '/'. */
  path: string;
  error: string;
  code: string;
}

export interface ImageListing {
  /** Relative paths ('/'-separated), sorted by UTF-16 code units. */
  files: string[];
  /** The listed files that are symbolic links (an output must not replace their targets either). */
  symlinks: string[];
  skippedFolders: SkippedFolder[];
}

function folderError(err: unknown): { error: string; code: string } {
  const errno = (err as NodeJS.ErrnoException).code;
  const reason = errno === 'EACCES' || errno === 'EPERM' ? 'permission denied' : errno === 'ENOENT' ? 'it vanished while listing' : (err as Error).message;
  return { error: `cannot list the folder (${reason})`, code: 'E_IO' };
}

/**
 * The files under `root` whose extension is listed (case-insensitive), sorted by UTF-16 code units so every
 * machine lists the same order. Symlinked files are followed; symlinked folders are not. A subfolder that
 * cannot be listed is skipped and named in `skippedFolders`; an unreadable root is an error.
 */
export async function listImageFiles(root: string, extensions: readonly string[] = IMAGE_EXTENSIONS): Promise<ImageListing> {
  const wanted = new Set(extensions.map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase()));
  try {
    if (!(await stat(root)).isDirectory()) throw new ClipError('E_INVALID_ARGUMENT', `${root} is not a folder`, { subject: root });
  } catch (err) {
    if (err instanceof ClipError) throw err;
    throw new ClipError('E_NOT_FOUND', `no folder ${root}`, { subject: root, cause: err });
  }
  const files: string[] = [];
  const symlinks: string[] = [];
  const skippedFolders: SkippedFolder[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (rel === '') throw new ClipError('E_IO', `cannot list the folder ${root}: ${(err as Error).message}`, { subject: root, cause: err });
      skippedFolders.push({ path: `${rel}/`, ...folderError(err) });
      return;
    }
    for (const entry of entries) {
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full, relPath);
      else if (wanted.has(path.extname(entry.name).toLowerCase())) {
        if (entry.isFile()) files.push(relPath);
        else if (entry.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isFile()) {
          files.push(relPath);
          symlinks.push(relPath);
        }
      }
    }
  };
  await walk(root, '');
  const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return { files: files.sort(byCodeUnits), symlinks: symlinks.sort(byCodeUnits), skippedFolders: skippedFolders.sort((a, b) => byCodeUnits(a.path, b.path)) };
}

/** The sorted relative paths of listImageFiles (subfolders that cannot be listed are left out). */
export async function listImages(root: string, extensions: readonly string[] = IMAGE_EXTENSIONS): Promise<string[]> {
  return (await listImageFiles(root, extensions)).files;
}

/** "i/n" with 0 <= i < n. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : Number.NaN;
  const count = m ? Number(m[2]) : Number.NaN;
  if (!(count >= 1 && index >= 0 && index < count)) throw new ClipError('E_INVALID_ARGUMENT', `--shard must be i/n with 0 <= i < n, got ${JSON.stringify(text)}`);
  return { index, count };
}

/** The files of one shard: those whose index is i modulo n. */
export function selectShard(files: readonly string[], shard: Shard = { index: 0, count: 1 }): FileEntry[] {
  const out: FileEntry[] = [];
  for (let i = shard.index; i < files.length; i += shard.count) out.push({ index: i, path: files[i] });
  return out;
}

/** A fingerprint of the file list, so a journal is resumed only against the same files. */
export function listHash(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(f).update('\0');
  return hash.digest('hex');
}
