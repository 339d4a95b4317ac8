/**
 * Index throughput: `Collection.index` on a fresh collection (hash + decode + embed + LanceDB commits) beside
 * `clip.embedImages` on the same files in the same run (the embedding alone), then the reruns: nothing changed
 * (size + mtime only) and every file touched (hash, no embedding).
 *
 *   node --import tsx bench/search-index.ts [--model <dir>] [--images 96] [--batch 16]
 */
import { mkdirSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Clip } from '../lib/clip.js';
import { Collection } from '../lib/search/collection.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
};
const fixtures = path.resolve(process.env.CONVNEXT_CLIP_FIXTURES ?? path.join(import.meta.dirname, '..', '..', 'shared', 'fixtures'));
const model = arg('model', path.join(fixtures, 'models', 'xxlarge-deep256'));
const count = Number(arg('images', '96'));
const batch = Number(arg('batch', '16'));
const work = path.join(os.tmpdir(), `search-index-bench-${process.pid}`);

async function main() {
  const photos = path.join(work, 'photos');
  mkdirSync(photos, { recursive: true });
  const sources = readdirSync(path.join(fixtures, 'images')).filter((f) => !f.startsWith('tiny'));
  for (let i = 0; i < count; i++) {
    const size = 300 + (i % 7) * 60;
    await sharp(path.join(fixtures, 'images', sources[i % sources.length])).resize(size, size).rotate(90 * (Math.floor(i / sources.length) % 4)).jpeg({ quality: 90 }).toFile(path.join(photos, `p${String(i).padStart(4, '0')}.jpg`));
  }
  const files = readdirSync(photos).sort().map((f) => path.join(photos, f));
  const clip = await Clip.load(model, { backend: 'native' });
  try {
    await clip.embedImages(files.slice(0, 2)); // warm-up
    const rows: [string, number][] = [];
    const time = async (label: string, fn: () => Promise<unknown>) => {
      const s = performance.now();
      await fn();
      const seconds = (performance.now() - s) / 1000;
      rows.push([label, seconds]);
      console.log(JSON.stringify({ label, seconds: +seconds.toFixed(2), images_per_s: +(count / seconds).toFixed(1), load1: +os.loadavg()[0].toFixed(1) }));
    };
    for (let round = 0; round < 2; round++) {
      await time(`embedImages alone (batch ${batch})`, () => clip.embedImages(files, { batchSize: batch }));
      rmSync(path.join(work, 'db'), { recursive: true, force: true });
      const collection = await Collection.open(path.join(work, 'db'), clip);
      await time(`Collection.index, fresh (batch ${batch})`, () => collection.index([photos], { batchSize: batch }));
      await time('Collection.index, rerun, nothing changed', () => collection.index([photos]));
      const t = new Date(Date.now() + 1000 * (round + 1));
      for (const f of files) utimesSync(f, t, t);
      await time('Collection.index, rerun, every file touched (hashed, not embedded)', () => collection.index([photos]));
      collection.close();
    }
    const by = new Map<string, number[]>();
    for (const [label, s] of rows) by.set(label, [...(by.get(label) ?? []), s]);
    const peer = Math.min(...by.get(`embedImages alone (batch ${batch})`)!);
    console.log(`\n${count} images, ${path.basename(model)}, ${clip.backend} ${clip.precision}; best of 2 rounds\n`);
    console.log('| what | s | images/s | time vs embedImages alone |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const [label, xs] of by) {
      const s = Math.min(...xs);
      console.log(`| ${label} | ${s.toFixed(2)} | ${(count / s).toFixed(1)} | ${(s / peer).toFixed(2)}x |`);
    }
  } finally {
    clip.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
