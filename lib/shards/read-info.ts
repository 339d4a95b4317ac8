/** Reads back what a committed partition recorded about itself (the `convnext_clip` key of its Parquet footer). */
import { asyncBufferFromFile, parquetMetadataAsync } from 'hyparquet';
import { ClipError } from '../errors.js';
import type { SkippedSample } from './embed-shard.js';

export interface PartitionInfo {
  shard: string;
  partition: number;
  samples: number;
  embedded: number;
  skipped: number;
  /** The first 1000 of them. */
  skipped_samples: SkippedSample[];
  dim: number;
  text: boolean;
}

export async function readPartitionInfo(metadataFile: string): Promise<PartitionInfo> {
  try {
    const metadata = await parquetMetadataAsync(await asyncBufferFromFile(metadataFile));
    const value = metadata.key_value_metadata?.find((kv) => kv.key === 'convnext_clip')?.value;
    if (value === undefined) throw new Error('no convnext_clip key in its metadata');
    return JSON.parse(value) as PartitionInfo;
  } catch (err) {
    throw new ClipError('E_IO', `${metadataFile} is not a partition metadata file written by convnext-clip: ${(err as Error).message}`, { subject: metadataFile, cause: err });
  }
}
