/** `convnext-clip embed-shards <shards...> --model <dir> --out <dir>`: webdataset shards into clip-retrieval's layout. */
import type { Command } from 'commander';
import { parseShard } from '../bulk/index.js';
import { embedShards } from '../shards/index.js';
import { type ModelFlags, loadModel, modelOptions, positiveInt } from './options.js';

interface EmbedShardsFlags extends ModelFlags {
  out: string;
  batch: number;
  shard?: string;
  text: boolean;
  maxPixels?: number;
  maxMemberBytes?: number;
  overwrite?: boolean;
}

export function registerEmbedShards(program: Command): void {
  modelOptions(
    program
      .command('embed-shards')
      .description("embed webdataset tar shards (<key>.jpg/.txt/.json) into clip-retrieval's layout: img_emb/, text_emb/, metadata/, one partition per shard")
      .argument('<shards...>', 'shard files (.tar), or folders holding them'),
  )
    .requiredOption('--out <dir>', 'output folder (img_emb/img_emb_N.npy, text_emb/text_emb_N.npy, metadata/metadata_N.parquet)')
    .option('--batch <n>', 'samples per forward pass', positiveInt, 16)
    .option('--shard <i/n>', 'only the shards whose position in the list is i modulo n (static schedulers)')
    .option('--no-text', 'image embeddings only (captions are still kept in the metadata)')
    .option('--max-pixels <n>', 'skip images with more pixels', positiveInt)
    .option('--max-member-bytes <n>', 'skip samples with a tar member over this size (default 64 MiB)', positiveInt)
    .option('--overwrite', 'redo partitions that are already complete')
    .action(async (shards: string[], flags: EmbedShardsFlags) => {
      const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
      const clip = await loadModel(flags);
      const controller = new AbortController();
      const onSignal = (signal: NodeJS.Signals) => controller.abort(new Error(`${signal}`));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const started = Date.now();
      try {
        const result = await embedShards(clip, {
          shards,
          out: flags.out,
          shard,
          batchSize: flags.batch,
          text: flags.text,
          maxPixels: flags.maxPixels,
          maxMemberBytes: flags.maxMemberBytes,
          overwrite: flags.overwrite,
          signal: controller.signal,
          onSkip: (s) => process.stderr.write(`convnext-clip: skipped sample ${s.key}: ${s.error} [${s.code}]\n`),
          onShard: (r) => {
            const what = r.existing ? 'already complete' : `${r.embedded} of ${r.samples} samples embedded, ${r.skipped} skipped`;
            process.stderr.write(`convnext-clip: ${r.shard} -> partition ${r.partition}: ${what}\n`);
          },
        });
        const seconds = (Date.now() - started) / 1000;
        process.stderr.write(`convnext-clip: ${result.shards.length} shards, ${result.embedded} of ${result.samples} samples embedded (${result.skipped} skipped) in ${seconds.toFixed(2)} s -> ${flags.out}\n`);
      } catch (err) {
        if (!controller.signal.aborted) throw err;
        process.stderr.write('convnext-clip: interrupted; finished partitions are kept, the current one is redone on the next run\n');
        process.exitCode = 130;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        clip.dispose();
      }
    });
}
