/** CLI glue: `resolveModelArgument` for every --model, and the `download` and `convert` commands. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type ConvertPrecision, convertModel } from '../convert.js';
import { type ResolveOptions, resolveHubModel, resolveModel } from './index.js';
import { ProgressMeter, cliProgressBar } from './progress.js';

export interface ModelArgumentOptions extends ResolveOptions {
  /** Draw a progress bar on stderr even when it is not a terminal. */
  progress?: boolean;
}

/**
 * A --model value: a directory as is, else a Hub name resolved through the cache. Without `onProgress`, a
 * progress bar is drawn on stderr when it is a terminal (or `progress` is set).
 */
export async function resolveModelArgument(arg: string, options: ModelArgumentOptions = {}): Promise<string> {
  const bar = options.onProgress ? undefined : cliProgressBar(options.progress === true);
  try {
    return await resolveModel(arg, { ...options, onProgress: options.onProgress ?? bar?.onProgress });
  } finally {
    bar?.stop();
  }
}

function precision(value: string): ConvertPrecision {
  if (value !== 'bf16' && value !== 'fp32') throw new InvalidArgumentError('expected bf16 or fp32');
  return value;
}

interface HubFlags {
  revision?: string;
  cacheDir?: string;
  progress?: boolean;
}

function hubOptions(cmd: Command): Command {
  return cmd
    .option('--revision <rev>', 'branch, tag or commit of a Hub model (or name@rev)')
    .option('--cache-dir <dir>', 'Hugging Face cache (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)')
    .option('--progress', 'draw progress bars even when stderr is not a terminal');
}

export function registerHubCommands(program: Command): void {
  hubOptions(
    program
      .command('download')
      .description('download a Hugging Face model (org/name[@rev]) into the cache shared with Python; prints its directory')
      .argument('<model>', 'e.g. laion/CLIP-convnext_xxlarge-laion2B-s34B-b82K-augreg-soup')
      .option('--verify', 're-hash cached files and refetch any that are corrupt')
      .option('--json', 'print JSON: dir, commit, files, downloaded'),
  ).action(async (model: string, opts: HubFlags & { verify?: boolean; json?: boolean }) => {
    const bar = cliProgressBar(opts.progress === true);
    try {
      const res = await resolveHubModel(model, { revision: opts.revision, cacheDir: opts.cacheDir, verify: opts.verify, onProgress: bar?.onProgress });
      process.stdout.write(opts.json ? `${JSON.stringify(res, null, 2)}\n` : `${res.dir}\n`);
    } finally {
      bar?.stop();
    }
  });

  hubOptions(
    program
      .command('convert')
      .description('write a model directory with the weights as one safetensors file in bf16 or fp32; prints the directory')
      .requiredOption('--model <name-or-dir>', 'model directory or Hugging Face name')
      .requiredOption('--out <dir>', 'output directory')
      .addOption(new Option('--precision <p>', 'bf16 (round to nearest even) | fp32').argParser(precision).default('bf16')),
  ).action(async (opts: HubFlags & { model: string; out: string; precision: ConvertPrecision }) => {
    const dir = await resolveModelArgument(opts.model, { revision: opts.revision, cacheDir: opts.cacheDir, progress: opts.progress });
    const bar = cliProgressBar(opts.progress === true);
    let meter: ProgressMeter | undefined;
    try {
      const res = await convertModel({
        model: dir,
        out: opts.out,
        precision: opts.precision,
        onProgress: bar
          ? (written, total) => {
              meter ??= new ProgressMeter({ repoId: '', file: `converting to ${opts.precision}`, total }, bar.onProgress);
              if (written >= total) meter.done();
              else meter.set(written);
            }
          : undefined,
      });
      process.stdout.write(`${res.dir}\n`);
    } finally {
      bar?.stop();
    }
  });
}
