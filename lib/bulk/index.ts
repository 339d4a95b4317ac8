/** Bulk embedding of a folder of images (embed-dir), shardable over many machines. */
export { defaultIndexPath, embedDir, type EmbedDirFormat, type EmbedDirOptions, type EmbedDirProgress, type EmbedDirResult } from './embed-dir.js';
export { IMAGE_EXTENSIONS, listImageFiles, listImages, parseShard, selectShard, type FileEntry, type ImageListing, type Shard, type SkippedFolder } from './files.js';
export type { BatchItem } from './journal.js';
export { lockOutput, type OutputLock } from './lock.js';
export { checkOutputs, outputPaths } from './paths.js';
