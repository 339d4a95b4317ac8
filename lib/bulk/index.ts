/** Bulk embedding of a folder of images (embed-dir), shardable over many machines. */
export { defaultIndexPath, embedDir, type EmbedDirFormat, type EmbedDirOptions, type EmbedDirProgress, type EmbedDirResult } from './embed-dir.js';
export { IMAGE_EXTENSIONS, listImages, parseShard, selectShard, type FileEntry, type Shard } from './files.js';
export type { BatchItem } from './journal.js';
