/**
 * Bounded, reproducible fuzzing of the checkpoint readers: mutate the fixture safetensors header, the fixture
 * .bin's zip structures and pickle, and assert each case parses or throws a ClipError, quickly.
 * FUZZ_SEED=<n> reproduces a run; FUZZ_SCALE=<x> multiplies the case counts.
 */
import { closeSync, copyFileSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { readManifest } from '../lib/checkpoint/index.js';
import { crc32, openFile } from '../lib/checkpoint/io.js';
import { unpickle } from '../lib/checkpoint/pickle.js';
import { torchHooks } from '../lib/checkpoint/torch-pickle.js';
import { entryDataOffset, readZipDirectory } from '../lib/checkpoint/zip.js';
import { isClipError } from '../lib/errors.js';
import { tempFolder } from './helpers/checkpoint-tmp.js';
import { fixture } from './helpers/fixtures.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const CASE_LIMIT_MS = 2000;
const tmp = tempFolder('fuzz');

/** mulberry32: small seeded PRNG. */
function prng(seed: number): { int(n: number): number; pick<T>(xs: readonly T[]): T; chance(p: number): boolean } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
  };
}

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x28, 0x2e, 0x52, 0x74, 0x51, 0x63, 0x93, 0x68, 0x71, 0x58, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x2d, 0x39];
const INTERESTING_WORDS = [0, 1, 0x7f, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 46, 30, 64];

/** Applies 1-4 same-length mutations inside [lo, hi) of `buf`; returns the touched [pos, len] ranges. */
function mutateInPlace(r: ReturnType<typeof prng>, buf: Buffer, lo: number, hi: number): Array<[number, number]> {
  const touched: Array<[number, number]> = [];
  const n = 1 + r.int(4);
  for (let k = 0; k < n; k++) {
    const pos = lo + r.int(Math.max(1, hi - lo));
    const kind = r.int(4);
    if (kind === 0) {
      buf[pos] ^= 1 << r.int(8);
      touched.push([pos, 1]);
    } else if (kind === 1) {
      buf[pos] = r.pick(INTERESTING_BYTES);
      touched.push([pos, 1]);
    } else if (kind === 2 && pos + 4 <= buf.length) {
      const w = r.pick(INTERESTING_WORDS);
      if (r.chance(0.5)) buf.writeUInt32LE(w >>> 0, pos);
      else buf.writeUInt16LE(w & 0xffff, pos);
      touched.push([pos, 4]);
    } else {
      const len = 1 + r.int(16);
      const from = lo + r.int(Math.max(1, hi - lo));
      const chunk = Buffer.from(buf.subarray(from, from + len));
      const end = Math.min(buf.length, pos + chunk.length);
      chunk.copy(buf, pos, 0, end - pos);
      touched.push([pos, end - pos]);
    }
  }
  return touched;
}

/** A length-changing splice: delete, or insert a copied chunk or interesting bytes. */
function splice(r: ReturnType<typeof prng>, buf: Buffer, lo: number, hi: number): Buffer {
  const pos = lo + r.int(Math.max(1, hi - lo));
  if (r.chance(0.5)) return Buffer.concat([buf.subarray(0, pos), buf.subarray(Math.min(buf.length, pos + 1 + r.int(32)))]);
  const from = r.int(buf.length);
  const insert = r.chance(0.5) ? buf.subarray(from, from + 1 + r.int(64)) : Buffer.from(Array.from({ length: 1 + r.int(8) }, () => r.pick(INTERESTING_BYTES)));
  return Buffer.concat([buf.subarray(0, pos), insert, buf.subarray(pos)]);
}

interface Tally {
  cases: number;
  parsed: number;
  rejected: number;
  failures: string[];
  slowest: number;
}

async function check(tally: Tally, label: string, work: () => unknown): Promise<void> {
  const t0 = performance.now();
  tally.cases++;
  try {
    await work();
    tally.parsed++;
  } catch (err) {
    if (isClipError(err)) tally.rejected++;
    else if (tally.failures.length < 10) tally.failures.push(`${label}: ${(err as Error)?.stack ?? String(err)}`);
  }
  const ms = performance.now() - t0;
  tally.slowest = Math.max(tally.slowest, ms);
  if (ms > CASE_LIMIT_MS && tally.failures.length < 10) tally.failures.push(`${label}: took ${ms.toFixed(0)} ms`);
}

function report(t: test.Test, name: string, tally: Tally, started: number, cpuStart: NodeJS.CpuUsage): void {
  t.deepEqual(tally.failures, [], `${name}: every case parsed or threw a ClipError`);
  const cpu = process.cpuUsage(cpuStart);
  t.comment(
    `${name}: ${tally.cases} cases (${tally.parsed} parsed, ${tally.rejected} rejected) in ${((performance.now() - started) / 1000).toFixed(2)} s ` +
      `(${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU), slowest ${tally.slowest.toFixed(1)} ms, seed ${SEED}`,
  );
}

const newTally = (): Tally => ({ cases: 0, parsed: 0, rejected: 0, failures: [], slowest: 0 });

test('fuzz: safetensors headers (fixture xxlarge-tiny)', async (t) => {
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const r = prng(SEED);
  const tally = newTally();
  const source = readFileSync(fixture('models', 'xxlarge-tiny', 'open_clip_model.safetensors'));
  const headerEnd = 8 + Number(source.readBigUInt64LE(0));
  const prefix = source.subarray(0, headerEnd);
  const file = path.join(tmp.dir, 'fuzz.safetensors');
  // Only the header matters to the reader: write it and set the file's length (sparse beyond the header).
  const fd = openSync(file, 'w+');
  const emit = (head: Buffer, size: number): void => {
    writeSync(fd, head, 0, Math.min(head.length, size), 0);
    ftruncateSync(fd, size);
  };
  const cases = Math.round(1000 * SCALE);
  for (let i = 0; i < cases; i++) {
    const head = Buffer.from(prefix);
    let size = source.length;
    let mutated: Buffer = head;
    const kind = r.int(10);
    if (kind < 6) mutateInPlace(r, head, r.chance(0.1) ? 0 : 8, r.chance(0.1) ? 8 : headerEnd);
    else if (kind < 8) {
      mutated = splice(r, head, 8, headerEnd);
      size += mutated.length - head.length;
    } else size = r.chance(0.7) ? r.int(headerEnd + 64) : headerEnd + r.int(source.length - headerEnd);
    emit(mutated, size);
    await check(tally, `safetensors case ${i}`, () => readManifest(file));
  }
  closeSync(fd);
  report(t, 'safetensors', tally, started, cpuStart);
});

test('fuzz: torch zip directory, local headers and raw pickle bytes (fixture .bin)', async (t) => {
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const r = prng(SEED + 1);
  const tally = newTally();
  const sourcePath = fixture('models', 'xxlarge-tiny', 'open_clip_pytorch_model.bin');
  const orig = readFileSync(sourcePath);
  const size = orig.length;
  const { handle } = await openFile(sourcePath);
  const dir = await readZipDirectory(handle, sourcePath, size);
  const headers = [...dir.entries.values()].map((e) => e.localHeaderOffset);
  const pkl = [...dir.entries.values()].find((e) => e.name.endsWith('/data.pkl'))!;
  const pklStart = entryDataOffset(handle.fd, sourcePath, dir, pkl);
  await handle.close();
  const cdStart = dir.centralDirectoryOffset;

  const file = path.join(tmp.dir, 'fuzz.bin');
  copyFileSync(sourcePath, file);
  const fd = openSync(file, 'r+');
  const work = Buffer.from(orig);
  try {
    const cases = Math.round(1000 * SCALE);
    for (let i = 0; i < cases; i++) {
      const kind = r.int(20);
      let restoreFrom = -1; // truncate/splice: rewrite the original from here on
      let touched: Array<[number, number]> = [];
      if (kind < 8) {
        touched = mutateInPlace(r, work, cdStart, size); // central directory and end records
      } else if (kind < 13) {
        const at = r.pick(headers); // one local header (and the start of its data)
        touched = mutateInPlace(r, work, at, Math.min(at + 100, size));
      } else if (kind < 15) {
        touched = mutateInPlace(r, work, pklStart, pklStart + pkl.uncompressedSize); // caught by the CRC
      } else if (kind < 18) {
        restoreFrom = cdStart + r.int(size - cdStart);
        const spliced = splice(r, work.subarray(restoreFrom), 0, size - restoreFrom);
        ftruncateSync(fd, restoreFrom);
        writeSync(fd, spliced, 0, spliced.length, restoreFrom);
      } else {
        restoreFrom = r.chance(0.8) ? cdStart + r.int(size - cdStart) : r.int(size);
        ftruncateSync(fd, restoreFrom);
      }
      for (const [pos, len] of touched) writeSync(fd, work, pos, len, pos);
      await check(tally, `bin case ${i} (kind ${kind})`, () => readManifest(file));
      for (const [pos, len] of touched) {
        orig.copy(work, pos, pos, pos + len);
        writeSync(fd, orig, pos, len, pos);
      }
      if (restoreFrom >= 0) {
        ftruncateSync(fd, restoreFrom);
        writeSync(fd, orig, restoreFrom, size - restoreFrom, restoreFrom);
      }
    }
    t.equal((await readManifest(file)).tensors.size, 169, 'the working copy is restored after the run');
  } finally {
    closeSync(fd);
  }
  report(t, 'torch zip', tally, started, cpuStart);
});

test('fuzz: pickle opcodes (fixture data.pkl), in memory and CRC-fixed in the .bin', async (t) => {
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const r = prng(SEED + 2);
  const tally = newTally();
  const sourcePath = fixture('models', 'xxlarge-tiny', 'open_clip_pytorch_model.bin');
  const orig = readFileSync(sourcePath);
  const { handle } = await openFile(sourcePath);
  const dir = await readZipDirectory(handle, sourcePath, orig.length);
  const entry = [...dir.entries.values()].find((e) => e.name.endsWith('/data.pkl'))!;
  const pklStart = entryDataOffset(handle.fd, sourcePath, dir, entry);
  await handle.close();
  const pkl = orig.subarray(pklStart, pklStart + entry.uncompressedSize);
  const hooks = torchHooks('fuzz.pkl');

  // In memory: every kind of mutation, splices and truncations included.
  const memoryCases = Math.round(1500 * SCALE);
  for (let i = 0; i < memoryCases; i++) {
    let p: Buffer = Buffer.from(pkl);
    const kind = r.int(10);
    if (kind < 5) mutateInPlace(r, p, 0, p.length);
    else if (kind < 8) p = splice(r, p, 0, p.length);
    else p = p.subarray(0, r.int(p.length));
    await check(tally, `pickle case ${i}`, () => unpickle(p, hooks, 'fuzz.pkl'));
  }

  // Through readManifest: same-length mutations of data.pkl with its CRC fixed in both headers, so tensor
  // resolution (storage keys, shapes, strides, offsets) sees the damage.
  const file = path.join(tmp.dir, 'fuzz-pkl.bin');
  copyFileSync(sourcePath, file);
  const fd = openSync(file, 'r+');
  const centralCrcAt = findCentralCrc(orig, dir.centralDirectoryOffset, entry.name);
  const localCrcAt = entry.localHeaderOffset + 14;
  try {
    const fileCases = Math.round(400 * SCALE);
    for (let i = 0; i < fileCases; i++) {
      const p = Buffer.from(pkl);
      mutateInPlace(r, p, 0, p.length);
      const crc = Buffer.alloc(4);
      crc.writeUInt32LE(crc32(p));
      writeSync(fd, p, 0, p.length, pklStart);
      writeSync(fd, crc, 0, 4, centralCrcAt);
      writeSync(fd, crc, 0, 4, localCrcAt);
      await check(tally, `crc-fixed pickle case ${i}`, () => readManifest(file));
    }
  } finally {
    closeSync(fd);
  }
  report(t, 'pickle', tally, started, cpuStart);
});

/** The CRC field of `name`'s central directory record. */
function findCentralCrc(zip: Buffer, cdStart: number, name: string): number {
  let p = cdStart;
  for (;;) {
    const nameLength = zip.readUInt16LE(p + 28);
    if (zip.toString('latin1', p + 46, p + 46 + nameLength) === name) return p + 16;
    p += 46 + nameLength + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
  }
}
