/** `convnext-clip classify --model <dir> --labels "a,b,c" <image>...`: ranked labels per image. */
import type { Command } from 'commander';
import { DEFAULT_TEMPLATES, type LabelScore } from '../clip.js';
import { ClipError } from '../errors.js';
import { type ModelFlags, collect, loadModel, modelOptions, positiveInt } from './options.js';

interface ClassifyFlags extends ModelFlags {
  labels: string;
  template: string[];
  top?: number;
  json?: boolean;
}

interface ImageResult {
  image: string;
  labels?: LabelScore[];
  error?: { code: string; message: string };
}

function parseLabels(text: string): string[] {
  const labels = text.split(',').map((l) => l.trim()).filter((l) => l.length > 0);
  if (labels.length === 0) throw new ClipError('E_INVALID_ARGUMENT', '--labels must name at least one label ("cat,dog,bird")');
  return labels;
}

export function registerClassify(program: Command): void {
  modelOptions(
    program
      .command('classify')
      .description('zero-shot classification: labels ranked by probability for each image')
      .argument('<image...>', 'image files'),
  )
    .requiredOption('--labels <list>', 'comma-separated labels, e.g. "cat,dog,bird"')
    .option('--template <t>', `prompt template, '{}' is the label (repeatable; default '${DEFAULT_TEMPLATES[0]}')`, collect, [])
    .option('--top <k>', 'print the k most likely labels', positiveInt)
    .option('--json', 'print JSON: [{"image", "labels": [{"label", "score"}]}]')
    .action(async (images: string[], flags: ClassifyFlags) => {
      const labels = parseLabels(flags.labels);
      const clip = await loadModel(flags);
      const results: ImageResult[] = [];
      try {
        const classifier = await clip.zeroShot(labels, flags.template.length > 0 ? flags.template : DEFAULT_TEMPLATES);
        for (const image of images) {
          try {
            const [ranked] = await clip.classify(image, classifier);
            results.push({ image, labels: flags.top ? ranked.slice(0, flags.top) : ranked });
          } catch (err) {
            if (!(err instanceof ClipError)) throw err;
            results.push({ image, error: { code: err.code, message: err.message } });
          }
        }
      } finally {
        clip.dispose();
      }
      if (flags.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      else {
        const width = Math.max(...labels.map((l) => l.length));
        const text = results.filter((r) => r.labels).map((r) => [r.image, ...r.labels!.map((s) => `  ${s.label.padEnd(width)}  ${(s.score * 100).toFixed(2).padStart(6)}%`)].join('\n'));
        if (text.length > 0) process.stdout.write(`${text.join('\n\n')}\n`);
      }
      const failed = results.filter((r) => r.error);
      for (const r of failed) process.stderr.write(`convnext-clip: ${r.error!.message} [${r.error!.code}]\n`);
      if (failed.length > 0) throw new ClipError(failed[0].error!.code as ClipError['code'], `${failed.length} of ${images.length} images could not be classified`);
    });
}
