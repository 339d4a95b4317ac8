import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { fixture, projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'lib', 'bin.ts'), ...args], { cwd: projectRoot });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('cli tokenize prints padded rows identical to the fixtures', async (t) => {
  const { code, stdout } = await cli('tokenize', '--vocab', fixture('models', 'xxlarge-tiny'), '--json', 'a photo of a cat.', 'an astronaut');
  t.equal(code, 0);
  const { ids } = JSON.parse(stdout) as { ids: number[][] };
  t.equal(ids.length, 2);
  t.equal(ids[0].length, 77);
  t.deepEqual(ids[0].slice(0, 7), [49406, 320, 1125, 539, 320, 2368, 269]);
  t.equal(ids[0][7], 49407);
  t.ok(ids[0].slice(8).every((x) => x === 0), 'padded with 0');
  const short = JSON.parse((await cli('tokenize', '--vocab', fixture('vocab', 'bpe_simple_vocab_16e6.txt.gz'), '--context-length', '4', '--json', 'a photo of a cat.')).stdout);
  t.deepEqual(short.ids, [[49406, 320, 1125, 49407]], 'truncated with the end token last');
});

test('cli info describes a fixture model', async (t) => {
  const { code, stdout } = await cli('info', '--model', fixture('models', 'large-d-tiny'), '--json');
  t.equal(code, 0);
  const info = JSON.parse(stdout);
  t.equal(info.architecture.vision.proj, 'mlp');
  t.equal(info.architecture.vision.normEps, 1e-6);
  t.ok(info.parameters > 0);
  t.deepEqual(Object.keys(info.dtypes), ['F32']);
  const text = await cli('info', '--model', fixture('models', 'xxlarge-tiny'));
  t.match(text.stdout, /convnext_xxlarge depths \[2,2,6,2\]/);
});

test('cli embed: normalized image and text rows', async (t) => {
  const { code, stdout, stderr } = await cli('embed', '--model', fixture('models', 'xxlarge-tiny'), '--backend', 'native', '--threads', '1', '--image', fixture('images', 'chelsea.png'), '--text', 'a cat', '--text', 'a dog', '--json');
  t.equal(code, 0, stderr);
  const out = JSON.parse(stdout) as { image_embeds: number[][]; text_embeds: number[][] };
  t.equal(out.image_embeds.length, 1);
  t.equal(out.text_embeds.length, 2);
  for (const row of [...out.image_embeds, ...out.text_embeds]) {
    t.equal(row.length, 32);
    t.ok(Math.abs(Math.hypot(...row) - 1) < 1e-5, 'unit norm');
  }
  const broken = await cli('embed', '--model', fixture('models', 'xxlarge-tiny'), '--image', fixture('README.md'));
  t.notEqual(broken.code, 0);
  t.match(broken.stderr, /E_IMAGE_DECODE/);
});

test('cli embed --packed-cache: the first run writes the cache file, the second maps it; the same embeddings', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cclip-cli-packed-'));
  try {
    const args = ['embed', '--model', fixture('models', 'xxlarge-tiny'), '--backend', 'native', '--threads', '1', '--image', fixture('images', 'chelsea.png'), '--text', 'a cat', '--json'];
    const plain = await cli(...args);
    const files = () => readdirSync(path.join(dir, 'cache')).filter((f) => f.endsWith('.cclip-packed')).map((f) => `${f}:${statSync(path.join(dir, 'cache', f)).ino}`);
    const first = await cli(...args, '--packed-cache', path.join(dir, 'cache'));
    t.equal(first.code, 0, first.stderr);
    const written = files();
    t.equal(written.length, 1, 'one cache file written');
    t.ok(readdirSync(path.join(dir, 'cache')).some((f) => f.endsWith('.cclip-lock')), 'beside its writer lock');
    const second = await cli(...args, '--packed-cache', path.join(dir, 'cache'));
    t.deepEqual(files(), written, 'the second run used it as it was');
    t.equal(first.stdout, plain.stdout, 'the same embeddings as without a cache');
    t.equal(second.stdout, plain.stdout, 'and from the mapped cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cli errors: non-zero exit, message on stderr, help exits 0', async (t) => {
  const missing = await cli('info', '--model', '/nonexistent');
  t.notEqual(missing.code, 0);
  t.match(missing.stderr, /neither a model directory nor a Hugging Face repo id.*\[E_NOT_FOUND\]/s);
  const noVocab = await cli('tokenize', 'hello');
  t.notEqual(noVocab.code, 0);
  t.match(noVocab.stderr, /--vocab is required/);
  const badOption = await cli('tokenize', '--context-length', 'x', 'hi');
  t.notEqual(badOption.code, 0);
  const help = await cli('--help');
  t.equal(help.code, 0);
  t.match(help.stdout, /tokenize/);
  const sub = await cli('embed', '--help');
  t.equal(sub.code, 0);
  t.match(sub.stdout, /--precision/);
});
