/**
 * The collection's LanceDB tables: `images` (one row per file: id, path, root, size, mtime, content hash,
 * L2-normalized embedding) and `collection` (one row: the model, precision, dim, the model key (weights SHA-256,
 * architecture, preprocessing, precision, library version) and a probe text embedding). Every write is one LanceDB commit, so a killed indexer leaves whole batches only.
 */
import type { Connection, Table } from '@lancedb/lancedb';
import { ClipError } from '../errors.js';
import { type ArrowModule, loadLance } from './lance.js';

export const IMAGES_TABLE = 'images';
export const META_TABLE = 'collection';
export const STORE_FORMAT = 1;

export interface ImageRow {
  /** 16 hex digits of sha256(path): the row's key, the only handle clients get. */
  id: string;
  path: string;
  /** The indexed folder (real path) the file was found under. */
  root: string;
  size: number;
  mtimeMs: number;
  /** sha256 of the file's bytes, hex. */
  hash: string;
  vector: Float32Array;
}

export type ImageInfo = Omit<ImageRow, 'vector'>;

export interface StoreIdentity {
  model: string;
  precision: string;
  dim: number;
  /** The embedding of a fixed probe text: a check of the text tower when no model key is known. */
  probe: Float32Array;
  /** What fixes the image embeddings (bulk/model-identity's modelKey, weights by content); absent when unknown. */
  key?: Record<string, string | number>;
}

export interface Hit extends ImageInfo {
  /** Cosine similarity to the query. */
  score: number;
}

export interface SearchOptions {
  top: number;
  /** Skip any ANN index: an exact scan (the default when there is no index). */
  exact?: boolean;
  /** ANN only: IVF partitions probed (default 64) and refine factor (default 100, at most 10000 / top). */
  nprobes?: number;
  refineFactor?: number;
}

export const ID_PATTERN = /^[0-9a-f]{16}$/;
const INFO_COLUMNS = ['id', 'path', 'root', 'size', 'mtime_ms', 'hash'];
const WHERE_CHUNK = 256;

function checkId(id: string): string {
  if (!ID_PATTERN.test(id)) throw new ClipError('E_INVALID_ARGUMENT', `not a row id: ${JSON.stringify(id).slice(0, 40)}`);
  return id;
}

const idList = (ids: readonly string[]) => ids.map((id) => `'${checkId(id)}'`).join(', ');

function infoOf(r: Record<string, unknown>): ImageInfo {
  return { id: String(r.id), path: String(r.path), root: String(r.root), size: Number(r.size), mtimeMs: Number(r.mtime_ms), hash: String(r.hash) };
}

function vectorOf(v: unknown): Float32Array {
  if (v instanceof Float32Array) return new Float32Array(v);
  if (v && typeof (v as { toArray?: unknown }).toArray === 'function') return Float32Array.from((v as { toArray(): ArrayLike<number> }).toArray());
  return Float32Array.from(v as ArrayLike<number>);
}

export class Store {
  private constructor(
    readonly dir: string,
    private readonly db: Connection,
    private readonly images: Table,
    readonly identity: StoreIdentity,
  ) {}

  /**
   * Opens (or creates) the store in `dir`. A store made with another model, precision or dim is refused
   * (E_CONFIG), as is a directory holding other LanceDB tables but not this layout.
   */
  static async open(dir: string, identity: StoreIdentity, options: { create?: boolean; probeMinCosine?: number } = {}): Promise<Store> {
    const { lancedb, arrow } = await loadLance();
    const db = await lancedb.connect(dir);
    const names = await db.tableNames();
    if (!names.includes(META_TABLE)) {
      if (names.includes(IMAGES_TABLE)) throw new ClipError('E_CONFIG', `${dir} has an images table but no collection table: not a convnext-clip collection`, { subject: dir });
      if (options.create === false) throw new ClipError('E_NOT_FOUND', `no collection in ${dir} (index a folder first)`, { subject: dir });
      await createTables(db, arrow, identity);
    }
    const stored = await readIdentity(db, dir);
    checkIdentity(dir, stored, identity, options.probeMinCosine ?? 0.999);
    if (!(await db.tableNames()).includes(IMAGES_TABLE)) await db.createEmptyTable(IMAGES_TABLE, imagesSchema(arrow, identity.dim), { mode: 'create', existOk: true });
    return new Store(dir, db, await db.openTable(IMAGES_TABLE), stored);
  }

  /** The identity recorded in `dir` without checking it against a model (E_NOT_FOUND when there is none). */
  static async readIdentity(dir: string): Promise<StoreIdentity> {
    const { lancedb } = await loadLance();
    const db = await lancedb.connect(dir);
    try {
      if (!(await db.tableNames()).includes(META_TABLE)) throw new ClipError('E_NOT_FOUND', `no collection in ${dir} (index a folder first)`, { subject: dir });
      return await readIdentity(db, dir);
    } finally {
      db.close();
    }
  }

  count(): Promise<number> {
    return this.images.countRows();
  }

  /** Every row without its vector. */
  async list(): Promise<ImageInfo[]> {
    const rows = await this.images.query().select(INFO_COLUMNS).toArray();
    return rows.map(infoOf);
  }

  /** Full rows (with vectors) for these ids; missing ids are left out. */
  async rows(ids: readonly string[]): Promise<ImageRow[]> {
    const out: ImageRow[] = [];
    for (let i = 0; i < ids.length; i += WHERE_CHUNK) {
      const chunk = ids.slice(i, i + WHERE_CHUNK);
      const rows = await this.images.query().where(`id IN (${idList(chunk)})`).toArray();
      for (const r of rows) out.push({ ...infoOf(r), vector: vectorOf(r.vector) });
    }
    return out;
  }

  /** Every row with its vector (tests, brute force, export). */
  async all(): Promise<ImageRow[]> {
    const rows = await this.images.query().toArray();
    return rows.map((r: Record<string, unknown>) => ({ ...infoOf(r), vector: vectorOf(r.vector) }));
  }

  async get(id: string): Promise<ImageInfo | undefined> {
    const rows = await this.images.query().where(`id = '${checkId(id)}'`).select(INFO_COLUMNS).limit(1).toArray();
    return rows.length ? infoOf(rows[0]) : undefined;
  }

  /** Inserts or replaces rows by id, in one commit. */
  async upsert(rows: readonly ImageRow[]): Promise<void> {
    if (rows.length === 0) return;
    const D = this.identity.dim;
    for (const r of rows) if (r.vector.length !== D) throw new ClipError('E_INVALID_ARGUMENT', `${r.path}: a ${r.vector.length}-dim vector in a ${D}-dim collection`);
    const data = this.toRecords(rows);
    await this.images.mergeInsert('id').whenMatchedUpdateAll().whenNotMatchedInsertAll().execute(data);
  }

  async remove(ids: readonly string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += WHERE_CHUNK) await this.images.delete(`id IN (${idList(ids.slice(i, i + WHERE_CHUNK))})`);
  }

  /** Nearest rows by cosine (the vectors are unit length, so by dot product). */
  async search(query: Float32Array, options: SearchOptions): Promise<Hit[]> {
    if (query.length !== this.identity.dim) throw new ClipError('E_INVALID_ARGUMENT', `a ${query.length}-dim query for a ${this.identity.dim}-dim collection`);
    let q = this.images.vectorSearch(query).distanceType('dot').select(INFO_COLUMNS).limit(options.top);
    if (options.exact) q = q.bypassVectorIndex();
    else if (await this.hasVectorIndex()) {
      // recall@10 0.995 at 1M vectors in bench/search.ts (nprobes 32 / refine 8 gave 0.225); refined candidates capped at 10k
      q = q.nprobes(options.nprobes ?? 64).refineFactor(options.refineFactor ?? Math.max(1, Math.min(100, Math.floor(10_000 / options.top))));
    }
    const rows = await q.toArray();
    return rows.map((r: Record<string, unknown>) => ({ ...infoOf(r), score: 1 - Number(r._distance) }));
  }

  async hasVectorIndex(): Promise<boolean> {
    return (await this.images.listIndices()).some((ix) => ix.columns.includes('vector'));
  }

  /** Builds an IVF-PQ index over the vectors (replacing any older one). */
  async createVectorIndex(options: { numPartitions?: number; numSubVectors?: number } = {}): Promise<void> {
    const { lancedb } = await loadLance();
    const n = await this.count();
    const numPartitions = options.numPartitions ?? Math.max(1, Math.min(4096, Math.round(n / 4096))); // LanceDB's guidance: ~4k rows per partition
    const numSubVectors = options.numSubVectors ?? Math.max(1, Math.floor(this.identity.dim / 16));
    await this.images.createIndex('vector', { config: lancedb.Index.ivfPq({ distanceType: 'dot', numPartitions, numSubVectors }), replace: true });
  }

  /** Compacts small fragments and brings an existing index up to date. */
  async optimize(): Promise<void> {
    await this.images.optimize();
  }

  close(): void {
    this.images.close();
    this.db.close();
  }

  private toRecords(rows: readonly ImageRow[]) {
    return rows.map((r) => ({ id: r.id, path: r.path, root: r.root, size: r.size, mtime_ms: r.mtimeMs, hash: r.hash, vector: Array.from(r.vector) }));
  }
}

function imagesSchema(a: ArrowModule, dim: number) {
  return new a.Schema([
    new a.Field('id', new a.Utf8(), true),
    new a.Field('path', new a.Utf8(), true),
    new a.Field('root', new a.Utf8(), true),
    new a.Field('size', new a.Float64(), true),
    new a.Field('mtime_ms', new a.Float64(), true),
    new a.Field('hash', new a.Utf8(), true),
    new a.Field('vector', new a.FixedSizeList(dim, new a.Field('item', new a.Float32(), true)), true),
  ]);
}

async function createTables(db: Connection, a: ArrowModule, identity: StoreIdentity): Promise<void> {
  // The identity row first: a store without it is never used, so a crash here leaves nothing half-made.
  await db.createTable(
    META_TABLE,
    [{ format: STORE_FORMAT, model: identity.model, precision: identity.precision, dim: identity.dim, probe: Array.from(identity.probe), model_key: identity.key ? JSON.stringify(identity.key) : null }],
    { mode: 'overwrite', schema: new a.Schema([
      new a.Field('format', new a.Float64(), false),
      new a.Field('model', new a.Utf8(), false),
      new a.Field('precision', new a.Utf8(), false),
      new a.Field('dim', new a.Float64(), false),
      new a.Field('probe', new a.FixedSizeList(identity.dim, new a.Field('item', new a.Float32(), true)), false),
      new a.Field('model_key', new a.Utf8(), true),
    ]) },
  );
  await db.createEmptyTable(IMAGES_TABLE, imagesSchema(a, identity.dim), { mode: 'create', existOk: true });
}

async function readIdentity(db: Connection, dir: string): Promise<StoreIdentity> {
  const meta = await db.openTable(META_TABLE);
  try {
    const rows = await meta.query().limit(2).toArray();
    if (rows.length !== 1) throw new ClipError('E_CONFIG', `${dir}: the collection table has ${rows.length} rows, expected 1`, { subject: dir });
    const r = rows[0];
    if (Number(r.format) !== STORE_FORMAT) throw new ClipError('E_CONFIG', `${dir}: collection format ${r.format}, this version reads ${STORE_FORMAT}`, { subject: dir });
    return { model: String(r.model), precision: String(r.precision), dim: Number(r.dim), probe: vectorOf(r.probe), key: keyOf(r.model_key, dir) };
  } finally {
    meta.close();
  }
}

function keyOf(value: unknown, dir: string): StoreIdentity['key'] {
  if (value === undefined || value === null) return undefined; // made before model keys, or without the weights file
  try {
    const key = JSON.parse(String(value));
    if (key && typeof key === 'object' && !Array.isArray(key) && Object.values(key).every((v) => typeof v === 'string' || typeof v === 'number')) return key;
  } catch {
    /* reported below */
  }
  throw new ClipError('E_CONFIG', `${dir}: the collection's model key is not valid JSON`, { subject: dir });
}

const KEY_PARTS: Record<string, string> = { weights: 'weights (SHA-256)', arch: 'architecture', preprocess: 'preprocessing', precision: 'precision', dim: 'dim', library: 'library version' };

function checkIdentity(dir: string, stored: StoreIdentity, want: StoreIdentity, minCosine: number): void {
  const made = `${dir} was indexed with ${stored.model} (${stored.precision}, dim ${stored.dim})`;
  if (stored.dim !== want.dim) throw new ClipError('E_CONFIG', `${made}; this model has dim ${want.dim}: use that model or another --db`, { subject: dir });
  if (stored.precision !== want.precision) throw new ClipError('E_CONFIG', `${made}; this model runs in ${want.precision}: use --precision ${stored.precision} or another --db`, { subject: dir });
  if (stored.key && want.key) {
    const differs = [...new Set([...Object.keys(stored.key), ...Object.keys(want.key)])].filter((k) => stored.key![k] !== want.key![k]);
    if (differs.length > 0) {
      const what = differs.map((k) => KEY_PARTS[k] ?? k).join(', ');
      const weights = differs.includes('weights') ? ` (indexed with weights ${String(stored.key.weights).slice(0, 12)}, these are ${String(want.key.weights).slice(0, 12)})` : '';
      throw new ClipError('E_CONFIG', `${made}; this model differs in ${what}${weights}: use that model or another --db`, { subject: dir });
    }
  }
  let dot = 0;
  for (let i = 0; i < want.dim; i++) dot += stored.probe[i] * want.probe[i];
  if (!(dot >= minCosine)) throw new ClipError('E_CONFIG', `${made}; ${want.model} embeds differently (probe cosine ${dot.toFixed(4)}): another model's weights. Use that model or another --db`, { subject: dir });
}
