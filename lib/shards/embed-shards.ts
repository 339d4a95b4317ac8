/** Embeds a list of webdataset shards one after another (or the `--shard i/n` share of them). */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { type Shard, selectShard } from '../bulk/index.js';
import type { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import { type EmbedShardOptions, type ShardResult, embedShard, partitionNumbers } from './embed-shard.js';

export interface EmbedShardsOptions extends EmbedShardOptions {
  /** Shard files (.tar), or folders whose *.tar files are taken in sorted order. */
  shards: readonly string[];
  /** The output folder (img_emb/, text_emb/, metadata/). */
  out: string;
  /** Only the shards whose position in the list is i modulo n (static schedulers: Slurm arrays, indexed jobs). */
  shard?: Shard;
  onShard?(result: ShardResult): void;
}

export interface EmbedShardsResult {
  shards: ShardResult[];
  samples: number;
  embedded: number;
  skipped: number;
}

/** Files as given, folders expanded to their .tar files (sorted by code units). */
export async function expandShards(inputs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const input of inputs) {
    const info = await stat(input).catch((err) => {
      throw new ClipError('E_NOT_FOUND', `no shard or folder ${input}`, { subject: input, cause: err });
    });
    if (!info.isDirectory()) {
      out.push(input);
      continue;
    }
    const names = (await readdir(input)).filter((n) => n.toLowerCase().endsWith('.tar')).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    out.push(...names.map((n) => path.join(input, n)));
  }
  if (out.length === 0) throw new ClipError('E_INVALID_ARGUMENT', 'no shards given (files, or folders holding .tar files)');
  return out;
}

export async function embedShards(clip: Clip, options: EmbedShardsOptions): Promise<EmbedShardsResult> {
  const shards = await expandShards(options.shards);
  const numbers = partitionNumbers(shards);
  const result: EmbedShardsResult = { shards: [], samples: 0, embedded: 0, skipped: 0 };
  for (const { index } of selectShard(shards, options.shard)) {
    if (options.signal?.aborted) throw options.signal.reason;
    const done = await embedShard(clip, shards[index], numbers[index], options.out, options);
    result.shards.push(done);
    result.samples += done.samples;
    result.embedded += done.embedded;
    result.skipped += done.skipped;
    options.onShard?.(done);
  }
  return result;
}
