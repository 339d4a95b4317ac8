/**
 * A searchable photo collection in a LanceDB directory, tied to the model that embedded it:
 *
 *   const collection = await Collection.open('photos.db', clip, { model: 'laion/CLIP-convnext_...' });
 *   await collection.index(['~/Pictures']);              // incremental; resumable
 *   const hits = await collection.search('a red bicycle in the snow', { top: 20 });
 *   const same = await collection.search({ image: 'query.jpg' });
 *   collection.close();
 */
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import type { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import type { ImageSource } from '../image/index.js';
import { modelKey, weightsFile, weightsFingerprint } from '../bulk/model-identity.js';
import type { ModelPaths } from '../model-dir.js';
import { type IndexOptions, type IndexResult, indexFolders } from './indexer.js';
import { type Hit, ID_PATTERN, type ImageInfo, type SearchOptions, Store, type StoreIdentity } from './store.js';

/** The text whose embedding fingerprints a model's weights. */
export const PROBE_TEXT = 'a photo of a red bicycle in the snow';
/** Rows from which `index()` builds an IVF-PQ index (below, exact search is fast enough). */
export const ANN_THRESHOLD = 100_000;
export const MAX_TOP = 1000;
/** IVF-PQ trains 256 centroids per sub-vector: fewer rows cannot build it. */
export const MIN_ANN_ROWS = 256;

export type SearchQuery = string | { image: ImageSource } | { vector: Float32Array };

export interface CollectionOpenOptions {
  /** The model's name as the user knows it (a Hub name or directory), recorded when the store is created. */
  model?: string;
  /** Fail with E_NOT_FOUND instead of creating an empty collection. */
  mustExist?: boolean;
  /**
   * The model as Clip.load took it from disk (a directory or explicit paths): its weights are hashed (SHA-256,
   * about 1.3 s per GB) into the collection's model key, so other weights (any tower) are refused. Without it,
   * only the precision, dim and a probe text embedding are checked.
   */
  weights?: string | ModelPaths;
}

export interface CollectionIndexOptions extends IndexOptions {
  /** Build (or refresh) the ANN index when the table has at least this many rows (default ANN_THRESHOLD; Infinity: never). */
  annThreshold?: number;
}

/** What a collection records of the model that embedded it; `weights` (see CollectionOpenOptions) adds its key. */
export async function modelIdentity(clip: Clip, model?: string, weights?: string | ModelPaths): Promise<StoreIdentity> {
  const probe = (await clip.embedTexts([PROBE_TEXT])).row(0).slice();
  let key: StoreIdentity['key'];
  if (weights !== undefined) {
    // the backend and device do not change what is stored: a collection made on one is searched on another
    const { backend: _backend, device: _device, ...rest } = modelKey(clip, await weightsFingerprint(weightsFile(weights)));
    key = rest;
  }
  return { model: model ?? clip.arch.vision.timmModelName, precision: clip.precision, dim: clip.embedDim, probe, key };
}

function topOf(top: number | undefined): number {
  const k = top ?? 10;
  if (!Number.isInteger(k) || k < 1 || k > MAX_TOP) throw new ClipError('E_INVALID_ARGUMENT', `top must be an integer in 1..${MAX_TOP}`);
  return k;
}

export class Collection {
  private constructor(
    private readonly clip: Clip,
    readonly store: Store,
  ) {}

  static async open(dir: string, clip: Clip, options: CollectionOpenOptions = {}): Promise<Collection> {
    const store = await Store.open(path.resolve(dir), await modelIdentity(clip, options.model, options.weights), { create: !options.mustExist });
    return new Collection(clip, store);
  }

  get dir(): string {
    return this.store.dir;
  }

  /** The model name, precision and dim the collection was made with. */
  get identity(): Omit<StoreIdentity, 'probe'> {
    const { model, precision, dim } = this.store.identity;
    return { model, precision, dim };
  }

  count(): Promise<number> {
    return this.store.count();
  }

  async index(folders: readonly string[], options: CollectionIndexOptions = {}): Promise<IndexResult> {
    const result = await indexFolders(this.clip, this.store, folders, options);
    if (result.added + result.updated + result.removed > 0) await this.store.optimize();
    const n = await this.store.count();
    if (n >= Math.max(MIN_ANN_ROWS, options.annThreshold ?? ANN_THRESHOLD) && !(await this.store.hasVectorIndex())) await this.store.createVectorIndex();
    return result;
  }

  /** The query's unit embedding: a text, an image (file, bytes, pixels) or a given vector. */
  async embedQuery(query: SearchQuery): Promise<Float32Array> {
    if (typeof query === 'string') return (await this.clip.embedTexts([query])).row(0).slice();
    if (query && typeof query === 'object' && 'image' in query) return (await this.clip.embedImages([query.image])).row(0).slice();
    if (query && typeof query === 'object' && 'vector' in query && query.vector instanceof Float32Array) return query.vector;
    throw new ClipError('E_INVALID_ARGUMENT', 'a query is a text, {image} or {vector}');
  }

  /** The `top` nearest images by cosine; exact unless the table has an ANN index (or `exact: true`). */
  async search(query: SearchQuery, options: Partial<SearchOptions> = {}): Promise<Hit[]> {
    return this.store.search(await this.embedQuery(query), { ...options, top: topOf(options.top) });
  }

  /** The row behind an id, or undefined (ids are 16 hex digits; anything else is E_INVALID_ARGUMENT). */
  get(id: string): Promise<ImageInfo | undefined> {
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw new ClipError('E_INVALID_ARGUMENT', 'not a row id');
    return this.store.get(id);
  }

  /**
   * The file behind a row id, only if it is still a regular file inside the folder it was indexed from (its
   * real path, symlinks resolved); else E_NOT_FOUND. The only way the server turns a request into a path.
   */
  async fileOf(id: string): Promise<{ info: ImageInfo; file: string }> {
    const info = await this.get(id);
    if (!info) throw new ClipError('E_NOT_FOUND', `no image ${id} in the collection`);
    const refused = () => new ClipError('E_NOT_FOUND', `image ${id} is no longer a file inside ${info.root}`);
    const [real, root] = await Promise.all([realpath(info.path).catch(() => undefined), realpath(info.root).catch(() => undefined)]);
    if (!real || !root || real !== info.path || !real.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) throw refused();
    const st = await lstat(real).catch(() => undefined);
    if (!st?.isFile()) throw refused();
    return { info, file: real };
  }

  close(): void {
    this.store.close();
  }
}
