/**
 * The files of one output partition in clip-retrieval's layout, and their atomic commit: the three files are
 * written under `<out>/.partial/`, flushed, then renamed into place with metadata last, so a partition whose
 * metadata file exists is complete.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, rename, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import { ClipError } from '../errors.js';

export interface PartitionFiles {
  imageEmbeddings: string;
  textEmbeddings: string;
  metadata: string;
}

export function checkPartition(partition: number): void {
  if (!Number.isSafeInteger(partition) || partition < 0) throw new ClipError('E_INVALID_ARGUMENT', `a partition number must be a non-negative integer, got ${String(partition)}`);
}

/** Where partition N lives under `out`. */
export function partitionFiles(out: string, partition: number): PartitionFiles {
  checkPartition(partition);
  return {
    imageEmbeddings: path.join(out, 'img_emb', `img_emb_${partition}.npy`),
    textEmbeddings: path.join(out, 'text_emb', `text_emb_${partition}.npy`),
    metadata: path.join(out, 'metadata', `metadata_${partition}.parquet`),
  };
}

/** True when partition N was committed (with text embeddings unless `withText` is false). */
export function partitionComplete(out: string, partition: number, withText = true): boolean {
  const files = partitionFiles(out, partition);
  return existsSync(files.metadata) && existsSync(files.imageEmbeddings) && (!withText || existsSync(files.textEmbeddings));
}

/** A private folder for the files of one attempt at partition N. */
export async function stagingDir(out: string, partition: number): Promise<string> {
  const dir = path.join(out, '.partial', `${partition}.${process.pid}.${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Renames the staged files (already flushed) into place, metadata last, and removes the staging folder. */
export async function commitPartition(staged: Partial<PartitionFiles>, out: string, partition: number): Promise<PartitionFiles> {
  const target = partitionFiles(out, partition);
  const order: (keyof PartitionFiles)[] = ['imageEmbeddings', 'textEmbeddings', 'metadata'];
  for (const name of order) {
    const from = staged[name];
    if (from === undefined) continue;
    await mkdir(path.dirname(target[name]), { recursive: true });
    await rename(from, target[name]);
    await syncDir(path.dirname(target[name]));
  }
  const dirs = new Set(Object.values(staged).map((f) => path.dirname(f)));
  for (const dir of dirs) await removeStaging(dir);
  return target;
}

/** Removes one attempt's staging folder, and `.partial` itself when no other attempt is using it. */
export async function removeStaging(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await rmdir(path.dirname(dir)).catch(() => undefined); // fails while other attempts are staged: fine
}
