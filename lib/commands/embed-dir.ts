/** `convnext-clip embed-dir <folder> --model <dir> --out <file>`: embeds a folder of images, resumably. */
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { type EmbedDirFormat, checkOutputs, defaultIndexPath, embedDir, lockOutput, outputPaths, parseShard } from '../bulk/index.js';
import { Clip } from '../clip.js';
import { resolveModelArgument } from '../hub/cli.js';
import { type ModelFlags, loadOptionsOf, modelOptions, oneOf, positiveInt } from './options.js';

interface EmbedDirFlags extends ModelFlags {
  out: string;
  format?: EmbedDirFormat;
  index?: string;
  batch: number;
  shard?: string;
  ext?: string;
  maxPixels?: number;
  restart?: boolean;
  progress?: boolean;
}

function progressBar(force: boolean): cliProgress.SingleBar | undefined {
  if (!force && !process.stderr.isTTY) return undefined;
  return new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: 'embed-dir |{bar}| {value}/{total} images | {rate}/s | ETA {eta_formatted} | {failed} failed',
      barsize: 24,
      hideCursor: false,
      noTTYOutput: force,
      notTTYSchedule: 2000,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
}

export function registerEmbedDir(program: Command): void {
  modelOptions(
    program
      .command('embed-dir')
      .description('embed every image under a folder (recursive, sorted) into .npy or jsonl plus an index of file names; resumable, shardable')
      .argument('<folder>', 'folder of images'),
  )
    .requiredOption('--out <file>', 'embeddings file (.npy or .jsonl); <out>.journal holds progress until it is written')
    .option('--format <f>', 'npy | jsonl (default: from the --out extension, else npy)', oneOf<EmbedDirFormat>('npy', 'jsonl'))
    .option('--index <file>', 'index of file names (default: --out with .index.json)')
    .option('--batch <n>', 'images per forward pass and per journal record', positiveInt, 16)
    .option('--shard <i/n>', 'only the files whose position in the sorted list is i modulo n')
    .option('--ext <list>', 'comma-separated extensions (default: jpg,jpeg,png,webp,gif,tif,tiff,avif,heic,heif)')
    .option('--max-pixels <n>', 'skip images with more pixels', positiveInt)
    .option('--restart', 'ignore an existing journal and start over')
    .option('--progress', 'draw the progress bar even when stderr is not a terminal')
    .action(async (folder: string, flags: EmbedDirFlags) => {
      const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
      // Bad --out paths and a run already writing --out fail before the model loads (seconds for XXLarge).
      checkOutputs(outputPaths(flags.out, flags.index ?? defaultIndexPath(flags.out)));
      const lock = await lockOutput(flags.out);
      let clip: Clip;
      let model: string;
      try {
        model = await resolveModelArgument(flags.model); // a Hub name becomes its snapshot folder
        clip = await Clip.load(model, loadOptionsOf(flags));
      } catch (err) {
        await lock.release();
        throw err;
      }
      const bar = progressBar(flags.progress === true);
      const started = Date.now();
      let resumed = 0;
      let barStarted = false;
      let interrupted = false;
      const controller = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => controller.abort(new Error(`${signal}`));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const result = await embedDir(clip, {
          folder,
          out: flags.out,
          format: flags.format,
          index: flags.index,
          batchSize: flags.batch,
          shard,
          extensions: flags.ext?.split(',').map((e) => e.trim()).filter((e) => e.length > 0),
          maxPixels: flags.maxPixels,
          restart: flags.restart,
          model,
          lock,
          signal: controller.signal,
          onProgress: (p) => {
            resumed = p.resumed;
            const seconds = (Date.now() - started) / 1000;
            const payload = { rate: seconds > 0 ? ((p.done - p.resumed) / seconds).toFixed(1) : '0.0', failed: p.failed };
            if (!barStarted) bar?.start(p.total, p.done, payload);
            else bar?.update(p.done, payload);
            barStarted = true;
          },
          onSkip: (item) => {
            // above the bar: clear its line; it redraws on the next update
            process.stderr.write(`${bar && process.stderr.isTTY ? '\r\x1b[2K' : ''}convnext-clip: skipped ${item.path}: ${item.error} [${item.code}]\n`);
          },
        });
        bar?.stop();
        if (result.complete) {
          process.stderr.write(`convnext-clip: ${result.out} is already complete (${result.embedded} of ${result.total} images, ${result.failed.length} failed); --restart to redo it\n`);
          return;
        }
        const seconds = ((Date.now() - started) / 1000).toFixed(1);
        const resumedNote = result.resumedBatches > 0 ? `, ${resumed} resumed from the journal` : '';
        const foldersNote = result.skippedFolders.length > 0 ? `, ${result.skippedFolders.length} unreadable folders skipped` : '';
        process.stderr.write(`convnext-clip: embedded ${result.embedded} of ${result.total} images in ${seconds} s (${result.failed.length} failed${resumedNote}${foldersNote}) -> ${result.out}, ${result.index}\n`);
      } catch (err) {
        if (!controller.signal.aborted) throw err;
        interrupted = true;
      } finally {
        bar?.stop();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        clip.dispose();
        await lock.release();
      }
      if (interrupted) {
        process.stderr.write(`convnext-clip: interrupted; finished batches are kept in ${flags.out}.journal: run the same command again to resume\n`);
        process.exit(130);
      }
    });
}
