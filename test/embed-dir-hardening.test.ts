/**
 * Issue 18 for embed-dir: a resume never mixes two models (class 3), outputs never destroy inputs or each
 * other and one run at a time writes an --out (class 8), unreadable folders and bad --out paths are typed
 * (class 9). Every CLI run is a child process with a kill timer.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import test from 'tape';
import { type EmbedDirOptions, embedDir } from '../lib/bulk/index.js';
import { STALE_MS, lockOutput } from '../lib/bulk/lock.js';
import { weightsFingerprint } from '../lib/bulk/model-identity.js';
import { Clip } from '../lib/clip.js';
import { ClipError } from '../lib/errors.js';
import { mkfifo } from './helpers/attack.js';
import { fixture, projectRoot } from './helpers/fixtures.js';

const TINY = fixture('models', 'xxlarge-tiny');
const clipPromise = Clip.load(TINY, { backend: 'native', threads: 1 });
test.onFinish(async () => (await clipPromise).dispose());

const work = mkdtempSync(path.join(tmpdir(), 'embed-dir-hardening-'));
test.onFinish(() => rmSync(work, { recursive: true, force: true }));

/** The 13 fixture photos `copies` times, some in subfolders. */
function makeFolder(name: string, copies = 1): string {
  const dir = path.join(work, name);
  if (existsSync(dir)) return dir;
  readdirSync(fixture('images')).forEach((file, i) => {
    const sub = path.join(dir, i % 3 === 0 ? '' : `set${i % 3}`);
    mkdirSync(sub, { recursive: true });
    for (let c = 0; c < copies; c++) copyFileSync(fixture('images', file), path.join(sub, c === 0 ? file : `${c}-${file}`));
  });
  return dir;
}

/** A copy of a fixture model; `reversed` reverses its float32 data (other weights, same size and header). */
function modelCopy(name: string, source: string, reversed = false): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ['open_clip_config.json', 'vocab.json', 'merges.txt']) copyFileSync(fixture('models', source, f), path.join(dir, f));
  const bytes = readFileSync(fixture('models', source, 'open_clip_model.safetensors'));
  if (reversed) {
    const start = 8 + Number(bytes.readBigUInt64LE(0));
    new Float32Array(bytes.buffer, bytes.byteOffset + start, (bytes.length - start) / 4).reverse();
  }
  writeFileSync(path.join(dir, 'open_clip_model.safetensors'), bytes);
  return dir;
}

/** tsx by file URL, so a CLI run can start in another working directory. */
const TSX = pathToFileURL(path.join(projectRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

/** `withoutDacOverride`: as root, run without the capabilities that let root read any folder (setpriv). */
function cli(args: string[], options: { cwd?: string; withoutDacOverride?: boolean; timeoutMs?: number } = {}): { child: ChildProcess; done: Promise<Finished> } {
  const started = Date.now();
  const argv = [process.execPath, '--import', TSX, path.join(projectRoot, 'test', 'server-cli-entry.ts'), ...args];
  const prefix = options.withoutDacOverride && process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search'] : [];
  const [command, ...rest] = [...prefix, ...argv];
  const child = spawn(command, rest, { cwd: options.cwd ?? projectRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const done = new Promise<Finished>((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, ms: Date.now() - started });
    }),
  );
  return { child, done };
}

const embedArgs = (folder: string, model: string, out: string, ...more: string[]) => ['embed-dir', folder, '--model', model, '--backend', 'native', '--threads', '1', '--batch', '2', '--out', out, ...more];

/** Starts a CLI run and SIGKILLs it once its journal holds `batches` batches. */
async function killAfter(args: string[], out: string, batches: number): Promise<number> {
  const { child, done } = cli(args);
  let seen = 0;
  while (seen < batches && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 5));
    seen = existsSync(`${out}.journal`) ? readFileSync(`${out}.journal`, 'utf8').split('\n').length - 2 : 0;
  }
  child.kill('SIGKILL');
  await done;
  return seen;
}

async function rejection(promise: Promise<unknown>): Promise<ClipError | undefined> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  return err instanceof ClipError ? err : undefined;
}

test('embed-dir resume: weights swapped between a kill and the resume (same size, same mtime) are refused, never mixed', async (t) => {
  t.timeoutAfter(300_000);
  const folder = makeFolder('photos');
  const model = modelCopy('swap-model', 'xxlarge-deep256');
  const other = modelCopy('other-model', 'xxlarge-deep256', true);
  const expected = path.join(work, 'other-full.npy');
  t.equal((await cli(embedArgs(folder, other, expected)).done).code, 0, 'uninterrupted run with the other weights');

  for (const swap of ['copied over, mtime restored', 'renamed over']) {
    const out = path.join(work, `swapped-${swap.split(' ')[0]}.npy`);
    const weights = path.join(model, 'open_clip_model.safetensors');
    const original = readFileSync(weights);
    const kept = await killAfter(embedArgs(folder, model, out), out, 2);
    t.ok(kept >= 2 && !existsSync(out), `${swap}: killed after ${kept} batches`);
    const { mtime } = statSync(weights);
    if (swap.startsWith('copied')) {
      copyFileSync(path.join(other, 'open_clip_model.safetensors'), weights);
      utimesSync(weights, mtime, mtime);
    } else {
      copyFileSync(path.join(other, 'open_clip_model.safetensors'), `${weights}.new`);
      rmSync(weights);
      copyFileSync(`${weights}.new`, weights);
      rmSync(`${weights}.new`);
    }
    t.equal(statSync(weights).size, original.length, `${swap}: same size`);
    const resumed = await cli(embedArgs(folder, model, out)).done;
    t.equal(resumed.code, 2, `${swap}: the resume is refused (exit 2)`);
    t.match(resumed.stderr, /journal of a different run \(other weights \(sha256 [0-9a-f]{12}\.\.\. then, [0-9a-f]{12}\.\.\. now\)\).*\[E_INVALID_ARGUMENT\]/, `${swap}: says the weights differ`);
    t.notOk(existsSync(out), `${swap}: no mixed output written`);
    const restarted = await cli(embedArgs(folder, model, out, '--restart')).done;
    t.equal(restarted.code, 0, `${swap}: --restart runs`);
    t.ok(readFileSync(out).equals(readFileSync(expected)), `${swap}: --restart gives exactly the new weights' output`);
    writeFileSync(weights, original);
  }
});

test('embed-dir resume: the same model spelled differently (trailing slash, relative from another folder, a symlink) resumes to identical bytes', async (t) => {
  t.timeoutAfter(300_000);
  const folder = makeFolder('photos');
  const model = modelCopy('spelled-model', 'xxlarge-deep256');
  const expected = path.join(work, 'spelled-full.npy');
  t.equal((await cli(embedArgs(folder, model, expected)).done).code, 0, 'uninterrupted run');
  const link = path.join(work, 'model-link');
  symlinkSync(model, link);
  const elsewhere = path.join(work, 'elsewhere');
  mkdirSync(elsewhere);
  for (const [what, spelling, cwd] of [
    ['trailing slash', `${model}/`, projectRoot],
    ['relative path from another working directory', path.relative(elsewhere, model), elsewhere],
    ['a symlink to the folder', link, projectRoot],
  ] as const) {
    const out = path.join(work, `spelled-${what.split(' ')[0]}.npy`);
    await killAfter(embedArgs(folder, model, out), out, 2);
    const resumed = await cli(embedArgs(folder, spelling, out), { cwd }).done;
    t.equal(resumed.code, 0, `${what}: exit 0 ${resumed.stderr.slice(-300)}`);
    t.match(resumed.stderr, /resumed from the journal/, `${what}: resumed`);
    t.ok(readFileSync(out).equals(readFileSync(expected)), `${what}: identical to the uninterrupted run`);
  }
});

test('embed-dir resume: another precision is refused; the journal key holds the weights hash, architecture, preprocessing and library version', async (t) => {
  t.timeoutAfter(120_000);
  const clip = await clipPromise;
  const folder = makeFolder('photos');
  const out = path.join(work, 'precision.npy');
  const controller = new AbortController();
  controller.abort(new Error('stop'));
  await embedDir(clip, { folder, model: TINY, out, batchSize: 4, signal: controller.signal }).catch(() => undefined);
  const header = JSON.parse(readFileSync(`${out}.journal`, 'utf8').split('\n')[0]);
  t.match(header.run.weights, /^[0-9a-f]{64}$/, 'weights: a SHA-256');
  t.ok(header.run.arch && header.run.preprocess && header.run.library && header.run.precision === 'fp32' && header.run.device === 'cpu', 'arch, preprocess, library version, precision, device');
  t.notOk(JSON.stringify(header.run).includes(TINY), 'the model path is not part of the key');
  const bf16 = await Clip.load(TINY, { backend: 'native', threads: 1, precision: 'bf16' });
  try {
    const err = await rejection(embedDir(bf16, { folder, model: TINY, out, batchSize: 4 }));
    t.ok(err?.code === 'E_INVALID_ARGUMENT' && /another precision/.test(err.message), `bf16 resume refused: ${err?.message}`);
  } finally {
    bf16.dispose();
  }
  const missing = await rejection(embedDir(clip, { folder, out, batchSize: 4 } as unknown as EmbedDirOptions));
  t.equal(missing?.code, 'E_INVALID_ARGUMENT', 'no model given: refused (no journal without a weights identity)');
});

test('embed-dir weights hash: reused while size, inode, mtime and ctime match; rehashed after any write, even with mtime restored', async (t) => {
  const file = path.join(work, 'weights.bin');
  writeFileSync(file, 'first weights');
  const first = await weightsFingerprint(file);
  t.match(first.sha256, /^[0-9a-f]{64}$/);
  const bogus = { ...first, sha256: 'f'.repeat(64) };
  t.equal((await weightsFingerprint(file, [bogus])).sha256, bogus.sha256, 'a matching stat: the recorded hash is reused (no reading)');
  const { mtime } = statSync(file);
  await new Promise((r) => setTimeout(r, 20));
  writeFileSync(file, 'other weights');
  utimesSync(file, mtime, mtime);
  const second = await weightsFingerprint(file, [bogus, first]);
  t.notEqual(second.sha256, bogus.sha256, 'rewritten with the mtime restored: ctime differs, so it is rehashed');
  t.notEqual(second.sha256, first.sha256, 'and the hash is the new content');
});

test('embed-dir outputs: --out or --index naming an input image (also respelled or through a symlink), each other, or an image name inside the folder are refused; nothing is written', async (t) => {
  t.timeoutAfter(120_000);
  const clip = await clipPromise;
  const folder = makeFolder('victims');
  const victim = path.join(folder, 'astronaut.png');
  const before = readFileSync(victim);
  const outside = path.join(work, 'outside.png');
  copyFileSync(fixture('images', 'coffee.png'), outside);
  symlinkSync(outside, path.join(folder, 'linked.png'));
  const base = { folder, model: TINY, batchSize: 4 };
  for (const [what, options, pattern] of [
    ['--out = an input image', { out: victim, format: 'npy' }, /is the input image astronaut\.png/],
    ['--out = an input image, respelled with ..', { out: path.join(folder, 'set1', '..', 'astronaut.png'), format: 'npy' }, /is the input image astronaut\.png/],
    ['--out = the target of a symlinked input', { out: outside, format: 'npy' }, /is the input image linked\.png/],
    ['--index = an input image', { out: path.join(work, 'x.npy'), index: victim }, /--index .* is the input image astronaut\.png/],
    ['--index = --out', { out: path.join(work, 'same.npy'), index: path.join(work, 'same.npy') }, /--out and --index are the same file/],
    ['--index = --out, respelled', { out: path.join(work, 'same.npy'), index: path.join(work, '.', 'victims', '..', 'same.npy') }, /--out and --index are the same file/],
    ['--index = the journal', { out: path.join(work, 'j.npy'), index: path.join(work, 'j.npy.journal') }, /--index and the journal are the same file/],
    ['--out = a new image name inside the folder', { out: path.join(folder, 'new.jpg'), format: 'npy' }, /inside the folder and has an image extension/],
  ] as const) {
    const err = await rejection(embedDir(clip, { ...base, ...options } as EmbedDirOptions));
    t.ok(err?.code === 'E_INVALID_ARGUMENT' && pattern.test(err.message), `${what}: ${err?.message}`);
  }
  t.ok(readFileSync(victim).equals(before), 'the input image is untouched');
  t.ok(readFileSync(outside).equals(readFileSync(fixture('images', 'coffee.png'))), 'the symlink target is untouched');
  t.notOk(existsSync(path.join(work, 'same.npy')) || existsSync(path.join(work, 'x.npy')), 'no output written');

  const viaCli = await cli(['embed-dir', folder, '--model', TINY, '--backend', 'native', '--threads', '1', '--out', victim, '--format', 'npy']).done;
  t.equal(viaCli.code, 2, 'CLI: exit 2');
  t.match(viaCli.stderr, /is the input image astronaut\.png; writing it would destroy it \[E_INVALID_ARGUMENT\]/, 'CLI: the message');
  t.ok(readFileSync(victim).equals(before), 'CLI: the input image is untouched');
});

test('embed-dir outputs: --out that is a directory, a FIFO, or has no parent folder is a typed error before any work', async (t) => {
  t.timeoutAfter(60_000);
  const clip = await clipPromise;
  const folder = makeFolder('photos');
  const dir = path.join(work, 'out-dir');
  mkdirSync(dir, { recursive: true });
  const fifo = path.join(work, 'out.fifo.npy');
  mkfifo(fifo);
  const file = path.join(work, 'a-file');
  writeFileSync(file, '');
  for (const [what, out, code, pattern] of [
    ['a directory', dir, 'E_INVALID_ARGUMENT', /is a directory/],
    ['a FIFO', fifo, 'E_INVALID_ARGUMENT', /is a FIFO/],
    ['no parent folder', path.join(work, 'no', 'such', 'x.npy'), 'E_NOT_FOUND', /its folder .* does not exist/],
    ['a file as its parent', path.join(file, 'x.npy'), 'E_INVALID_ARGUMENT', /is not a folder/],
  ] as const) {
    const started = Date.now();
    const err = await rejection(embedDir(clip, { folder, model: TINY, out }));
    t.ok(err?.code === code && pattern.test(err.message), `--out ${what}: ${code}: ${err?.message}`);
    t.ok(Date.now() - started < 5000, `--out ${what}: at once (${Date.now() - started} ms)`);
  }
  t.notOk(existsSync(`${dir}.journal`), 'no journal beside the directory');
});

test('embed-dir lock: a second run on a held --out fails at once with E_LOCKED; two runs started together never both fail', async (t) => {
  t.timeoutAfter(300_000);
  const folder = makeFolder('many-photos', 4);
  const model = fixture('models', 'xxlarge-deep256');
  const out = path.join(work, 'locked.npy');
  const held = await lockOutput(out); // a run in progress
  const refused = await cli(embedArgs(folder, model, out)).done;
  t.equal(refused.code, 1, `while the lock is held: exit 1 after ${refused.ms} ms`);
  t.match(refused.stderr, new RegExp(`is being written by another embed-dir run \\(pid ${process.pid} on .*\\).*\\[E_LOCKED\\]`), 'E_LOCKED naming the holder');
  t.notOk(existsSync(`${out}.journal`) || existsSync(out), 'it did no work');
  await held.release();

  const both = await Promise.all([cli(embedArgs(folder, model, out)).done, cli(embedArgs(folder, model, out)).done]);
  const locked = both.filter((r) => /\[E_LOCKED\]/.test(r.stderr)).length;
  const embedded = both.filter((r) => r.code === 0 && /embedded 52 of 52 images/.test(r.stderr)).length;
  const complete = both.filter((r) => r.code === 0 && /already complete/.test(r.stderr)).length;
  t.equal(embedded, 1, 'one run embedded the folder');
  t.equal(locked + complete, 1, `the other was refused at once (${locked}) or found it complete (${complete}); none failed at the end`);
  t.ok(both.every((r) => !/E_CHECKPOINT_CORRUPT|E_UNEXPECTED/.test(r.stderr)), 'no corrupt journal, no untyped error');
  const data = readFileSync(out);
  const header = data.subarray(10, 10 + data.readUInt16LE(8)).toString('latin1');
  const dim = Number(/'shape': \(52, (\d+)\)/.exec(header)?.[1]);
  t.ok(dim > 0 && data.length === 10 + data.readUInt16LE(8) + 52 * dim * 4, `the output is whole: ${header.trim()}`);
  t.notOk(existsSync(`${out}.lock`), 'the lock is released');
});

test('embed-dir lock: held locks refuse at once; a dead holder on this host or a stale one from another host is taken over', async (t) => {
  const out = path.join(work, 'lock-target.npy');
  const held = await lockOutput(out);
  const started = Date.now();
  const err = await rejection(lockOutput(out));
  t.ok(err?.code === 'E_LOCKED' && Date.now() - started < 1000, `a live holder: E_LOCKED at once (${err?.message})`);
  await held.release();
  t.notOk(existsSync(`${out}.lock`), 'released');

  const plant = (owner: object, ageMs = 0) => {
    mkdirSync(`${out}.lock`, { recursive: true });
    writeFileSync(path.join(`${out}.lock`, 'owner.json'), JSON.stringify({ token: 'x', since: 'then', ...owner }));
    const when = new Date(Date.now() - ageMs);
    utimesSync(`${out}.lock`, when, when);
  };
  const dead = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => dead.once('exit', r));
  plant({ host: hostname(), pid: dead.pid });
  const takeover = await lockOutput(out);
  t.pass('a lock of a dead pid on this host is taken over at once');
  await takeover.release();
  plant({ host: 'another-host', pid: 1 });
  t.equal((await rejection(lockOutput(out)))?.code, 'E_LOCKED', 'a fresh lock from another host: E_LOCKED');
  plant({ host: 'another-host', pid: 1 }, STALE_MS + 5000);
  const stale = await lockOutput(out);
  t.pass(`a lock from another host not refreshed for ${STALE_MS / 1000} s is taken over`);
  rmSync(path.join(`${out}.lock`, 'owner.json'));
  writeFileSync(path.join(`${out}.lock`, 'owner.json'), JSON.stringify({ host: 'thief', pid: 2, token: 'y', since: 'now' }));
  t.throws(() => stale.check(), /another embed-dir run \(pid 2 on thief/, 'check(): a lock taken over by someone else is noticed');
  await stale.release();
  t.ok(existsSync(`${out}.lock`), "release() leaves a lock that is no longer ours");
  rmSync(`${out}.lock`, { recursive: true, force: true });
});

test('embed-dir: *.tmp-<pid> files left by a killed final write are removed by the next run', async (t) => {
  t.timeoutAfter(120_000);
  const clip = await clipPromise;
  const folder = makeFolder('photos');
  const out = path.join(work, 'tmp-left.npy');
  const index = path.join(work, 'tmp-left.index.json');
  const stale = [`${out}.tmp-999999`, `${index}.tmp-424242`, `${out}.tmp-${process.pid}`];
  for (const f of stale) writeFileSync(f, 'half written');
  const unrelated = `${out}.tmp-notes`;
  writeFileSync(unrelated, 'not ours');
  const result = await embedDir(clip, { folder, model: TINY, out, batchSize: 4 });
  t.equal(result.embedded, 13);
  for (const f of stale) t.notOk(existsSync(f), `${path.basename(f)} removed`);
  t.ok(existsSync(unrelated), 'a file that is not <name>.tmp-<digits> is left alone');
});

test('embed-dir: an unreadable subfolder is skipped and reported like an unreadable file, not E_UNEXPECTED', async (t) => {
  t.timeoutAfter(120_000);
  const folder = path.join(work, 'with-secret');
  mkdirSync(path.join(folder, 'secret'), { recursive: true });
  copyFileSync(fixture('images', 'camera.png'), path.join(folder, 'camera.png'));
  copyFileSync(fixture('images', 'coffee.png'), path.join(folder, 'secret', 'coffee.png'));
  chmodSync(path.join(folder, 'secret'), 0o000);
  const out = path.join(work, 'with-secret.npy');
  try {
    const run = await cli(['embed-dir', folder, '--model', TINY, '--backend', 'native', '--threads', '1', '--out', out], { withoutDacOverride: true }).done;
    t.equal(run.code, 0, `exit 0 ${run.stderr.slice(-300)}`);
    t.match(run.stderr, /skipped secret\/: cannot list the folder \(permission denied\) \[E_IO\]/, 'reported on stderr');
    t.match(run.stderr, /embedded 1 of 1 images .*1 unreadable folders skipped/, 'summary');
    const index = JSON.parse(readFileSync(path.join(work, 'with-secret.index.json'), 'utf8'));
    t.deepEqual(index.skippedFolders, [{ path: 'secret/', error: 'cannot list the folder (permission denied)', code: 'E_IO' }], 'listed in the index');
  } finally {
    chmodSync(path.join(folder, 'secret'), 0o755);
  }
});
