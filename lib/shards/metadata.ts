/**
 * clip-retrieval's metadata_{N}.parquet: one row per embedded sample, `image_path` (the sample key), `caption`,
 * then the top-level fields of the sample's json, each typed by what its values are (integers INT64, other
 * numbers DOUBLE, booleans, strings; mixed, arrays and objects as JSON). Written with hyparquet-writer.
 */
import { type ColumnSource, parquetWriteBuffer } from 'hyparquet-writer';

export interface MetadataRow {
  key: string;
  caption: string | null;
  json: Record<string, unknown> | undefined;
}

type ColumnType = 'BOOLEAN' | 'INT64' | 'DOUBLE' | 'STRING' | 'JSON';

const OWN_COLUMNS = new Set(['image_path', 'caption']);

function typeOf(values: readonly unknown[]): ColumnType {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length === 0) return 'STRING';
  if (present.every((v) => typeof v === 'boolean')) return 'BOOLEAN';
  if (present.every((v) => typeof v === 'number' && Number.isSafeInteger(v))) return 'INT64';
  if (present.every((v) => typeof v === 'number')) return 'DOUBLE';
  if (present.every((v) => typeof v === 'string')) return 'STRING';
  return 'JSON';
}

function column(name: string, values: unknown[]): ColumnSource {
  const type = typeOf(values);
  const data = values.map((v) => (v === undefined ? null : type === 'INT64' && v !== null ? BigInt(v as number) : v));
  return { name, type, data, nullable: true };
}

/** The Parquet bytes of the rows; `info` goes into the file's key-value metadata as JSON. */
export function metadataParquet(rows: readonly MetadataRow[], info: Record<string, unknown>): Uint8Array {
  const fieldNames: string[] = [];
  const seen = new Set<string>();
  for (const row of rows) {
    for (const name of Object.keys(row.json ?? {})) {
      if (!seen.has(name) && !OWN_COLUMNS.has(name)) fieldNames.push(name);
      seen.add(name);
    }
  }
  const columnData: ColumnSource[] = [
    { name: 'image_path', type: 'STRING', data: rows.map((r) => r.key), nullable: false },
    { name: 'caption', type: 'STRING', data: rows.map((r) => r.caption), nullable: true },
    ...fieldNames.map((name) => column(name, rows.map((r) => (r.json && Object.hasOwn(r.json, name) ? r.json[name] : null)))),
  ];
  return new Uint8Array(parquetWriteBuffer({ columnData, kvMetadata: [{ key: 'convnext_clip', value: JSON.stringify(info) }], createdBy: 'convnext-clip' }));
}
