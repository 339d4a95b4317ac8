/** `convnext-clip index <folder>... --db <dir> --model ...`: incremental, resumable indexing into a LanceDB collection. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { Collection } from '../search/collection.js';
import { type ModelFlags, loadModelFrom, modelOptions, positiveInt } from './options.js';

interface IndexFlags extends ModelFlags {
  db: string;
  batch: number;
  ext?: string;
  annThreshold?: number;
  progress?: boolean;
  json?: boolean;
}

export function registerIndex(program: Command): void {
  modelOptions(
    program
      .command('index')
      .description('index the images under folders into a LanceDB collection for `search`: adds new and changed files, drops removed ones, skips unchanged ones; resumable')
      .argument('<folder...>', 'folders of images (recursive)'),
  )
    .requiredOption('--db <dir>', 'collection directory (created if missing)')
    .option('--batch <n>', 'images per forward pass and per commit', positiveInt, 16)
    .option('--ext <list>', 'comma-separated extensions (default: jpg,jpeg,png,webp,gif,tif,tiff,avif,heic,heif)')
    .option('--ann-threshold <n>', 'build an IVF-PQ index from this many rows (default 100000)', positiveInt)
    .option('--progress', 'draw the progress bar even when stderr is not a terminal')
    .option('--json', 'print the counts as JSON on stdout')
    .action(async (folders: string[], flags: IndexFlags) => {
      const { clip, source } = await loadModelFrom(flags);
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const bar = flags.progress || process.stderr.isTTY
        ? new cliProgress.SingleBar({ stream: process.stderr, format: 'index |{bar}| {value}/{total} files | {added} added {updated} updated {unchanged} unchanged {failed} failed', barsize: 24, hideCursor: false, noTTYOutput: flags.progress === true, notTTYSchedule: 2000 }, cliProgress.Presets.shades_classic)
        : undefined;
      let collection: Collection | undefined;
      const started = Date.now();
      try {
        // recorded so `search` can load the same model from anywhere
        const model = existsSync(flags.model) ? path.resolve(flags.model) : flags.model;
        collection = await Collection.open(flags.db, clip, { model, weights: source });
        let barStarted = false;
        const result = await collection.index(folders, {
          batchSize: flags.batch,
          extensions: flags.ext?.split(',').map((e) => e.trim()).filter((e) => e.length > 0),
          annThreshold: flags.annThreshold,
          signal: controller.signal,
          onProgress: (p) => {
            if (!barStarted) bar?.start(p.total, p.done, p);
            else bar?.update(p.done, p);
            barStarted = true;
          },
        });
        bar?.stop();
        for (const f of result.failures) process.stderr.write(`convnext-clip: skipped ${f.path}: ${f.message}\n`);
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        const rows = await collection.count();
        if (flags.json) process.stdout.write(`${JSON.stringify({ ...result, rows, interrupted: controller.signal.aborted })}\n`);
        const what = `${result.added} added, ${result.updated} updated, ${result.unchanged} unchanged, ${result.removed} removed, ${result.failed} failed`;
        process.stderr.write(`convnext-clip: ${controller.signal.aborted ? 'interrupted: ' : ''}${what} in ${seconds} s; ${rows} images in ${flags.db}${controller.signal.aborted ? ' (run the same command again to finish)' : ''}\n`);
      } finally {
        bar?.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        collection?.close();
        clip.dispose();
      }
      if (controller.signal.aborted) process.exitCode = 130;
    });
}
