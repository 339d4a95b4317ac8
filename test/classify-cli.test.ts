/** `convnext-clip classify`: ranked labels as text and JSON, equal to Clip.classify; bad images reported. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { Clip } from '../lib/clip.js';
import { fixture, projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);
const MODEL = fixture('models', 'xxlarge-tiny');

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'test', 'server-cli-entry.ts'), 'classify', '--model', MODEL, '--backend', 'native', '--threads', '1', ...args], { cwd: projectRoot });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('classify --json: labels ranked as Clip.classify ranks them, with templates', async (t) => {
  const images = [fixture('images', 'chelsea.png'), fixture('images', 'rocket.jpg')];
  const labels = ['cat', 'rocket', 'cup of coffee'];
  const templates = ['a photo of a {}.', 'a blurry photo of a {}.'];
  const { code, stdout, stderr } = await cli('--labels', labels.join(','), '--template', templates[0], '--template', templates[1], '--json', ...images);
  t.equal(code, 0, stderr);
  const got = JSON.parse(stdout) as { image: string; labels: { label: string; score: number }[] }[];
  const clip = await Clip.load(MODEL, { backend: 'native', threads: 1 });
  try {
    const want = await clip.classify(images, await clip.zeroShot(labels, templates));
    t.deepEqual(
      got.map((r) => r.image),
      images,
    );
    for (let i = 0; i < images.length; i++) {
      t.deepEqual(
        got[i].labels.map((s) => s.label),
        want[i].map((s) => s.label),
        `${path.basename(images[i])}: same ranking`,
      );
      t.ok(got[i].labels.every((s, j) => Math.abs(s.score - want[i][j].score) < 1e-6), 'same scores');
    }
  } finally {
    clip.dispose();
  }
});

test('classify: text output, --top, and an unreadable image reported with a non-zero exit', async (t) => {
  const ok = await cli('--labels', 'cat, dog ,bird', '--top', '2', fixture('images', 'chelsea.png'));
  t.equal(ok.code, 0, ok.stderr);
  const lines = ok.stdout.trim().split('\n');
  t.equal(lines[0], fixture('images', 'chelsea.png'), 'the image, then its labels');
  t.equal(lines.length, 3, 'two labels with --top 2');
  t.match(lines[1], /^ {2}(cat|dog|bird) +\d+\.\d\d%$/, 'label and percentage');

  const bad = await cli('--labels', 'cat,dog', fixture('images', 'chelsea.png'), fixture('README.md'));
  t.equal(bad.code, 1);
  t.match(bad.stdout, /chelsea\.png/, 'the good image is still classified');
  t.match(bad.stderr, /README\.md.*\[E_IMAGE_DECODE\]/, 'the bad one reported');

  const noLabels = await cli('--labels', ' , ', fixture('images', 'chelsea.png'));
  t.equal(noLabels.code, 2, 'no labels: invalid argument');
});
