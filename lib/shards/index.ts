/** Webdataset shards in, clip-retrieval's layout out (img_emb/, text_emb/, metadata/, one partition per shard). */
export { CAPTION_FIELD, IMAGE_FIELDS, JSON_FIELD, MAX_LISTED_SKIPS, embedShard, partitionNumbers, type EmbedShardOptions, type ShardProgress, type ShardResult, type SkippedSample } from './embed-shard.js';
export { embedShards, type EmbedShardsOptions, type EmbedShardsResult } from './embed-shards.js';
export { Npy16Writer, float16Bytes, fromFloat16Bits, npy16Header, toFloat16Bits } from './npy16.js';
export { partitionComplete, partitionFiles, type PartitionFiles } from './partition.js';
export { readPartitionInfo, type PartitionInfo } from './read-info.js';
export { DEFAULT_MAX_MEMBER_BYTES, readSamples, splitMemberName, type ReadSamplesOptions, type Sample } from './webdataset.js';
