/** Searching a photo collection: a LanceDB store per model, incremental indexing, text and image queries. */
export { ANN_THRESHOLD, Collection, MAX_TOP, PROBE_TEXT, type CollectionIndexOptions, type CollectionOpenOptions, type SearchQuery } from './collection.js';
export { type IndexProgress, type IndexResult } from './indexer.js';
export { LANCEDB_INSTALL } from './lance.js';
export { type Hit, type ImageInfo, type SearchOptions } from './store.js';
