/** `convnext-clip preprocess --model <dir> --json <image>`: the model's preprocessing of one image. */
import { type Command, InvalidArgumentError } from 'commander';
import { readModelConfig, resolveModelFiles } from '../model-dir.js';
import { preprocessImages } from './preprocess.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function registerImageCommands(program: Command): void {
  program
    .command('preprocess')
    .description('open_clip eval preprocessing of an image with the model\'s preprocess_cfg; prints {"shape": [3, S, S], "data": [...]}')
    .requiredOption('--model <dir>', 'model directory (its open_clip_config.json gives the preprocessing)')
    .option('--auto-orient', 'rotate by the EXIF orientation first (open_clip does not)')
    .option('--max-pixels <n>', 'refuse images with more pixels (default 100000000)', positiveInt)
    .option('--json', 'print JSON (the only format)', true)
    .argument('<image>', 'an image file (JPEG, PNG, WebP, GIF, TIFF, AVIF)')
    .action(async (image: string, opts: { model: string; autoOrient?: boolean; maxPixels?: number }) => {
      const { preprocess } = await readModelConfig(resolveModelFiles(opts.model).config);
      const data = await preprocessImages([image], preprocess, { autoOrient: opts.autoOrient === true, maxPixels: opts.maxPixels });
      const S = preprocess.size;
      process.stdout.write(`${JSON.stringify({ shape: [3, S, S], data: Array.from(data) })}\n`);
    });
}
