/**
 * Embeds webdataset shards into clip-retrieval's layout, one partition per shard: images and captions are
 * decoded and embedded in batches as the tar streams by, rows go straight to float16 .npy files, and the
 * partition is committed atomically at the end. A broken sample is skipped and listed in the metadata.
 */
import { open } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { Clip } from '../clip.js';
import { ClipError, type ClipErrorCode } from '../errors.js';
import { type MetadataRow, metadataParquet } from './metadata.js';
import { Npy16Writer } from './npy16.js';
import { type PartitionFiles, commitPartition, partitionComplete, partitionFiles, removeStaging, stagingDir } from './partition.js';
import { readPartitionInfo } from './read-info.js';
import { type Sample, readSamples } from './webdataset.js';
import { mapLimit } from '../map-limit.js';

/** Fields taken as the image, in order of preference (case-insensitive). */
export const IMAGE_FIELDS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'tif', 'tiff', 'avif', 'heic', 'heif'];
export const CAPTION_FIELD = 'txt';
export const JSON_FIELD = 'json';

export interface EmbedShardOptions {
  /** Samples per forward pass (default 16). */
  batchSize?: number;
  /** Embed the `txt` captions into text_emb (default true; a sample without one is then skipped). */
  text?: boolean;
  maxPixels?: number;
  maxMemberBytes?: number;
  /** Images decoded at once (default min(4, cores)). */
  concurrency?: number;
  /** Redo a partition that is already complete (default: return at once). */
  overwrite?: boolean;
  /** Checked between batches; nothing of the partition is kept when it aborts. */
  signal?: AbortSignal;
  onBatch?(progress: ShardProgress): void;
  onSkip?(skipped: SkippedSample): void;
}

export interface ShardProgress {
  shard: string;
  partition: number;
  samples: number;
  embedded: number;
  skipped: number;
}

export interface SkippedSample {
  key: string;
  index: number;
  code: ClipErrorCode | 'E_UNEXPECTED';
  error: string;
}

export interface ShardResult {
  shard: string;
  partition: number;
  files: PartitionFiles;
  /** True when the partition was already complete and nothing ran. */
  existing?: boolean;
  samples: number;
  embedded: number;
  skipped: number;
  /** The first MAX_LISTED_SKIPS skipped samples (all of them are counted in `skipped`). */
  skippedSamples: SkippedSample[];
}

/** Skipped samples listed in the result and the Parquet footer; past this they are only counted. */
export const MAX_LISTED_SKIPS = 1000;

interface Prepared {
  pixels: Float32Array[];
  rows: MetadataRow[];
  skipped: SkippedSample[];
}

function fieldOf(sample: Sample, names: readonly string[]): Buffer | undefined {
  for (const [field, bytes] of sample.fields) if (names.includes(field.toLowerCase())) return bytes;
  return undefined;
}

function parseJson(bytes: Buffer | undefined): Record<string, unknown> | undefined {
  if (bytes === undefined) return undefined;
  const value: unknown = JSON.parse(bytes.toString('utf8'));
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
  return value as Record<string, unknown>;
}

/**
 * Partition numbers for a list of shards: the numbers in their names when every name is digits + .tar
 * (img2dataset's 00000.tar, 00001.tar, ...) and they differ, else the positions in the list.
 */
export function partitionNumbers(shards: readonly string[]): number[] {
  const numbers = shards.map((s) => /^(\d{1,15})\.tar$/i.exec(path.basename(s))?.[1]).map((d) => (d === undefined ? undefined : Number(d)));
  if (numbers.every((n) => n !== undefined) && new Set(numbers).size === numbers.length) return numbers as number[];
  return shards.map((_, i) => i);
}

/** Embeds one shard into partition `partition` of `out`. */
export async function embedShard(clip: Clip, shard: string, partition: number, out: string, options: EmbedShardOptions = {}): Promise<ShardResult> {
  const B = options.batchSize ?? 16;
  if (!Number.isInteger(B) || B < 1 || B > 4096) throw new ClipError('E_INVALID_ARGUMENT', `batch size must be an integer in 1..4096, got ${B}`);
  const withText = options.text ?? true;
  const files = partitionFiles(out, partition);
  const name = path.basename(shard);
  if (options.overwrite !== true && partitionComplete(out, partition, withText)) {
    return { shard, partition, files, existing: true, ...(await readCounts(files.metadata)) };
  }
  const concurrency = options.concurrency ?? Math.min(4, availableParallelism());
  const D = clip.embedDim;
  const staging = await stagingDir(out, partition);
  const staged = { imageEmbeddings: path.join(staging, 'img_emb.npy'), textEmbeddings: path.join(staging, 'text_emb.npy'), metadata: path.join(staging, 'metadata.parquet') };
  const images = await Npy16Writer.create(staged.imageEmbeddings, D);
  const texts = withText ? await Npy16Writer.create(staged.textEmbeddings, D) : undefined;
  const rows: MetadataRow[] = [];
  const skipped: SkippedSample[] = [];
  let skippedCount = 0;
  let samples = 0;

  const skip = (sample: Sample, code: SkippedSample['code'], error: string): SkippedSample => ({ key: sample.key, index: sample.index, code, error });

  const prepare = async (batch: Sample[]): Promise<Prepared> => {
    const results = await mapLimit(batch, concurrency, async (sample): Promise<{ pixels: Float32Array; row: MetadataRow } | SkippedSample> => {
      if (sample.problem) return skip(sample, sample.problem.code, sample.problem.message);
      const image = fieldOf(sample, IMAGE_FIELDS);
      if (image === undefined) return skip(sample, 'E_NOT_FOUND', `no image member (${IMAGE_FIELDS.join(', ')})`);
      const caption = fieldOf(sample, [CAPTION_FIELD])?.toString('utf8') ?? null;
      if (withText && caption === null) return skip(sample, 'E_NOT_FOUND', 'no caption member (txt)');
      let json: Record<string, unknown> | undefined;
      try {
        json = parseJson(fieldOf(sample, [JSON_FIELD]));
      } catch (err) {
        return skip(sample, 'E_INVALID_ARGUMENT', `json member: ${(err as Error).message}`);
      }
      try {
        const pixels = await clip.preprocessImages([image], { maxPixels: options.maxPixels, concurrency: 1 });
        return { pixels, row: { key: sample.key, caption, json } };
      } catch (err) {
        const message = (err instanceof Error ? err.message : String(err)).replace(/^input #0: /, '');
        return skip(sample, err instanceof ClipError ? err.code : 'E_UNEXPECTED', message);
      }
    });
    const prepared: Prepared = { pixels: [], rows: [], skipped: [] };
    for (const r of results) {
      if ('pixels' in r) {
        prepared.pixels.push(r.pixels);
        prepared.rows.push(r.row);
      } else prepared.skipped.push(r);
    }
    return prepared;
  };

  const write = async (prepared: Prepared, count: number): Promise<void> => {
    if (prepared.pixels.length > 0) {
      const data = new Float32Array(prepared.pixels.reduce((n, p) => n + p.length, 0));
      prepared.pixels.reduce((off, p) => (data.set(p, off), off + p.length), 0);
      await images.append((await clip.embedImages({ data, n: prepared.pixels.length }, { batchSize: B })).data);
      if (texts) await texts.append((await clip.embedTexts(prepared.rows.map((r) => r.caption ?? ''), { batchSize: B })).data);
    }
    rows.push(...prepared.rows);
    skippedCount += prepared.skipped.length;
    skipped.push(...prepared.skipped.slice(0, MAX_LISTED_SKIPS - skipped.length));
    samples += count;
    for (const s of prepared.skipped) options.onSkip?.(s);
    options.onBatch?.({ shard, partition, samples, embedded: rows.length, skipped: skippedCount });
  };

  let committed = false;
  try {
    let batch: Sample[] = [];
    let pending: { prepared: Promise<Prepared>; count: number } | undefined;
    const flushPending = async () => {
      if (pending) await write(await pending.prepared, pending.count);
      pending = undefined;
      if (options.signal?.aborted) throw options.signal.reason;
    };
    for await (const sample of readSamples(shard, { maxMemberBytes: options.maxMemberBytes })) {
      batch.push(sample);
      if (batch.length < B) continue;
      const next = { prepared: prepare(batch), count: batch.length }; // decodes while the previous batch runs
      batch = [];
      await flushPending();
      pending = next;
    }
    const last = batch.length > 0 ? { prepared: prepare(batch), count: batch.length } : undefined;
    await flushPending();
    pending = last;
    await flushPending();

    await images.close();
    await texts?.close();
    const info = { shard: name, partition, samples, embedded: rows.length, skipped: skippedCount, skipped_samples: skipped, dim: D, text: withText };
    const parquet = await open(staged.metadata, 'w');
    try {
      await parquet.writeFile(metadataParquet(rows, info));
      await parquet.sync();
    } finally {
      await parquet.close();
    }
    const committedFiles = await commitPartition(withText ? staged : { imageEmbeddings: staged.imageEmbeddings, metadata: staged.metadata }, out, partition);
    committed = true;
    return { shard, partition, files: committedFiles, samples, embedded: rows.length, skipped: skippedCount, skippedSamples: skipped };
  } finally {
    if (!committed) {
      await images.abandon();
      await texts?.abandon();
      await removeStaging(staging);
    }
  }
}

/** The counts a committed partition recorded in its metadata file. */
async function readCounts(metadataFile: string): Promise<{ samples: number; embedded: number; skipped: number; skippedSamples: SkippedSample[] }> {
  const info = await readPartitionInfo(metadataFile);
  return { samples: info.samples, embedded: info.embedded, skipped: info.skipped, skippedSamples: info.skipped_samples };
}
