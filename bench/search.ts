/**
 * Search latency on synthetic unit vectors (dim 1024): LanceDB exact (flat scan), LanceDB IVF-PQ (ANN), and a
 * plain brute force over one Float32Array, in the same run on the same queries; recall@10 of the ANN and of
 * LanceDB exact against the brute force; LanceDB ingest and index-build throughput.
 *
 *   node --import tsx bench/search.ts [--sizes 10000,100000,1000000] [--queries 50] [--dir /tmp/search-bench]
 *
 * The data is clustered like real embeddings (1000 random centres, each vector = centre + noise, normalized);
 * queries are fresh points drawn the same way. Prints one JSON line per size and a Markdown table.
 */
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadLance } from '../lib/search/lance.js';

const D = 1024;
const CENTRES = 1000;
const NOISE = 0.6; // per-coordinate noise relative to a unit centre: within-cluster cosine about 0.7
const CHUNK = 50_000;

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const sizes = arg('sizes', '10000,100000,1000000').split(',').map(Number);
const queries = Number(arg('queries', '50'));
const dir = arg('dir', path.join(os.tmpdir(), 'search-bench'));
/** ANN query settings to measure on the one index: nprobes:refineFactor pairs. */
const annSettings = arg('ann', '32:8,32:40,64:100').split(',').map((p) => p.split(':').map(Number) as [number, number]);

/** Deterministic normal samples (xorshift + Box-Muller). */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) + 0.5) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function normalize(v: Float32Array): void {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i] * v[i];
  const k = 1 / Math.sqrt(n);
  for (let i = 0; i < v.length; i++) v[i] *= k;
}

const centres = (() => {
  const g = rng(7);
  const c = new Float32Array(CENTRES * D);
  for (let i = 0; i < c.length; i++) c[i] = g();
  for (let i = 0; i < CENTRES; i++) normalize(c.subarray(i * D, (i + 1) * D));
  return c;
})();

function fill(out: Float32Array, seed: number): void {
  const g = rng(seed);
  const sd = NOISE / Math.sqrt(D);
  for (let r = 0; r < out.length / D; r++) {
    const c = Math.floor(((g() * 1e6) % CENTRES + CENTRES) % CENTRES);
    const row = out.subarray(r * D, (r + 1) * D);
    for (let i = 0; i < D; i++) row[i] = centres[c * D + i] + sd * g();
    normalize(row);
  }
}

function bruteTop(data: Float32Array, n: number, q: Float32Array, k: number): number[] {
  const best: { id: number; s: number }[] = [];
  let floor = -Infinity;
  for (let r = 0; r < n; r++) {
    let s = 0;
    const o = r * D;
    for (let i = 0; i < D; i++) s += data[o + i] * q[i];
    if (best.length < k || s > floor) {
      best.push({ id: r, s });
      best.sort((a, b) => b.s - a.s);
      if (best.length > k) best.pop();
      floor = best[best.length - 1].s;
    }
  }
  return best.map((b) => b.id);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const recall = (got: number[][], want: number[][]) => got.reduce((sum, g, i) => sum + g.filter((id) => want[i].includes(id)).length, 0) / (want.length * 10);

/** Phase timings as they happen (stderr), so a run cut short still reports what it measured. */
const phase = (n: number, what: string, value: unknown) => process.stderr.write(`${JSON.stringify({ n, what, value, load1: +os.loadavg()[0].toFixed(1), at: new Date().toISOString() })}\n`);

async function main() {
  const { lancedb, arrow } = await loadLance();
  const rows: Record<string, unknown>[] = [];
  for (const n of sizes) {
    rmSync(dir, { recursive: true, force: true });
    const db = await lancedb.connect(dir);
    const data = new Float32Array(n * D);
    const t0 = performance.now();
    for (let start = 0; start < n; start += CHUNK) fill(data.subarray(start * D, Math.min(n, start + CHUNK) * D), 1000 + start);
    const genS = (performance.now() - t0) / 1000;
    phase(n, 'generate_s', genS);

    // Ingest in Arrow batches straight from the Float32Array.
    const listType = new arrow.FixedSizeList(D, new arrow.Field('item', new arrow.Float32(), true));
    const batch = (start: number, end: number) =>
      new arrow.Table({
        id: arrow.makeVector(Int32Array.from({ length: end - start }, (_, i) => start + i)),
        vector: arrow.makeVector(arrow.makeData({ type: listType, length: end - start, nullCount: 0, child: arrow.makeData({ type: new arrow.Float32(), length: (end - start) * D, data: data.subarray(start * D, end * D) }) })),
      });
    const t1 = performance.now();
    const table = await db.createTable('bench', batch(0, Math.min(n, CHUNK)));
    for (let start = CHUNK; start < n; start += CHUNK) await table.add(batch(start, Math.min(n, start + CHUNK)));
    const ingestS = (performance.now() - t1) / 1000;
    phase(n, 'ingest_s', ingestS);

    const qs = new Float32Array(queries * D);
    fill(qs, 99);
    const query = (i: number) => qs.subarray(i * D, (i + 1) * D);
    const ids = async (q: ReturnType<typeof table.vectorSearch>) => (await q.select(['id']).toArray()).map((r: { id: number }) => r.id);

    const bruteMs: number[] = [];
    const truth: number[][] = [];
    for (let i = 0; i < queries; i++) {
      const s = performance.now();
      truth.push(bruteTop(data, n, query(i), 10));
      bruteMs.push(performance.now() - s);
    }
    phase(n, 'brute_ms_median', median(bruteMs));
    const exactMs: number[] = [];
    const exact: number[][] = [];
    for (let i = 0; i < queries; i++) {
      const s = performance.now();
      exact.push(await ids(table.vectorSearch(query(i)).distanceType('dot').limit(10).bypassVectorIndex()));
      exactMs.push(performance.now() - s);
    }

    phase(n, 'exact_ms_median', median(exactMs));
    phase(n, 'exact_recall10', recall(exact, truth));
    const numPartitions = Math.max(1, Math.round(n / 4096));
    const t2 = performance.now();
    await table.createIndex('vector', { config: lancedb.Index.ivfPq({ distanceType: 'dot', numPartitions, numSubVectors: D / 16 }) });
    const indexS = (performance.now() - t2) / 1000;
    phase(n, 'ivfpq_build_s', indexS);
    const annRuns = [];
    for (const [nprobes, refine] of annSettings) {
      const annMs: number[] = [];
      const ann: number[][] = [];
      for (let i = 0; i < queries; i++) {
        const s = performance.now();
        ann.push(await ids(table.vectorSearch(query(i)).distanceType('dot').limit(10).nprobes(nprobes).refineFactor(refine)));
        annMs.push(performance.now() - s);
      }
      annRuns.push({ nprobes, refine, ms: +median(annMs).toFixed(1), recall10: recall(ann, truth) });
      phase(n, `ann nprobes ${nprobes} refine ${refine}`, annRuns[annRuns.length - 1]);
    }
    const row = {
      n,
      dim: D,
      queries,
      generate_s: +genS.toFixed(1),
      ingest_s: +ingestS.toFixed(1),
      ingest_vectors_per_s: Math.round(n / ingestS),
      brute_ms: +median(bruteMs).toFixed(1),
      exact_ms: +median(exactMs).toFixed(1),
      exact_recall10: recall(exact, truth),
      ivfpq_partitions: numPartitions,
      ivfpq_build_s: +indexS.toFixed(1),
      ann: annRuns,
      load1: os.loadavg()[0].toFixed(1),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
    table.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log('\n| vectors | brute force Float32Array ms | LanceDB exact ms | exact / brute | recall@10 LanceDB exact | IVF-PQ nprobes / refine | IVF-PQ ms | ANN / brute | recall@10 ANN | ingest vectors/s | IVF-PQ build s (partitions) | load avg |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows as Record<string, any>[]) {
    for (const a of r.ann) {
      console.log(`| ${r.n.toLocaleString('en-US')} | ${r.brute_ms} | ${r.exact_ms} | ${(r.exact_ms / r.brute_ms).toFixed(2)} | ${r.exact_recall10.toFixed(3)} | ${a.nprobes} / ${a.refine} | ${a.ms} | ${(a.ms / r.brute_ms).toFixed(3)} | ${a.recall10.toFixed(3)} | ${r.ingest_vectors_per_s.toLocaleString('en-US')} | ${r.ivfpq_build_s} (${r.ivfpq_partitions}) | ${r.load1} |`);
    }
  }
}

await main();
