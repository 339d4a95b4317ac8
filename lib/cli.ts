/** The `convnext-clip` command line (run by lib/bin.ts). Errors go to stderr with a non-zero exit code. */
import { statSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { parameterCount } from './architecture.js';
import type { BackendName, Device, Precision } from './backends/types.js';
import { Clip } from './clip.js';
import { ClipError } from './errors.js';
import { registerBackends } from './commands/backends.js';
import { registerServeCommands } from './commands/index.js';
import { registerIndex } from './commands/index-cmd.js';
import { type ModelFlags, PACKED_CACHE_HELP, loadOptionsOf } from './commands/options.js';
import { registerSearch } from './commands/search.js';
import { registerEmbedShards } from './commands/embed-shards.js';
import { registerQueueCommands } from './commands/queue.js';
import { registerHubCommands, resolveModelArgument } from './hub/cli.js';
import { registerImageCommands } from './image/cli.js';
import { describeModel, findVocabulary } from './model-dir.js';
import { ClipTokenizer } from './tokenizer/index.js';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function oneOf<T extends string>(...choices: T[]) {
  return (value: string): T => {
    if (!choices.includes(value as T)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}`);
    return value as T;
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

async function tokenizerFor(vocab: string | undefined): Promise<ClipTokenizer> {
  if (vocab === undefined) {
    throw new ClipError('E_INVALID_ARGUMENT', '--vocab is required: a model directory, vocab.json, merges.txt or bpe_simple_vocab_16e6.txt.gz');
  }
  let isDir = false;
  try {
    isDir = statSync(vocab).isDirectory();
  } catch {
    /* ClipTokenizer.load reports the missing path */
  }
  return ClipTokenizer.load(isDir ? (findVocabulary(vocab) ?? vocab) : vocab);
}

function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function buildProgram(): Command {
  const program = new Command('convnext-clip')
    .description('OpenCLIP ConvNeXt CLIP models (ConvNeXt-XXLarge and family) from Node.js')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('tokenize')
    .description('tokenize texts exactly as open_clip does; prints {"ids": [[...]]}')
    .option('--vocab <file-or-model-dir>', 'vocab.json/merges.txt, bpe_simple_vocab_16e6.txt.gz or a model directory')
    .option('--context-length <n>', 'row length (padded with 0, truncated with the end token last)', positiveInt, 77)
    .option('--json', 'print JSON (the only format)', true)
    .argument('<text...>', 'texts to tokenize')
    .action(async (texts: string[], opts: { vocab?: string; contextLength: number }) => {
      const tokenizer = await tokenizerFor(opts.vocab);
      process.stdout.write(`${JSON.stringify({ ids: tokenizer.tokenizeRows(texts, opts.contextLength) })}\n`);
    });

  program
    .command('info')
    .description('architecture, parameter count, dtypes, files and sizes of a model directory')
    .requiredOption('--model <dir-or-name>', 'model directory, or a Hugging Face name (laion/CLIP-convnext_...)')
    .option('--json', 'print JSON')
    .action(async (opts: { model: string; json?: boolean }) => {
      const { files, arch, preprocess, manifest } = await describeModel(await resolveModelArgument(opts.model));
      const dtypes: Record<string, number> = {};
      for (const t of manifest.tensors.values()) dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
      const fileList = [files.config, files.weights, ...(files.vocabulary ? Object.values(files.vocabulary) : [])].map((path) => ({ path, bytes: statSync(path).size }));
      const info = { architecture: arch, preprocess, parameters: parameterCount(arch), format: manifest.format, tensors: manifest.tensors.size, dtypes, files: fileList };
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
        return;
      }
      const v = arch.vision;
      const t = arch.text;
      const lines = [
        `vision: ${v.timmModelName} depths [${v.depths}] dims [${v.dims}] eps ${v.normEps} at ${v.imageSize}px, ${v.proj} projection${v.projBias ? ' with bias' : ''}`,
        `text:   width ${t.width}, ${t.heads} heads, ${t.layers} layers, context ${t.contextLength}, vocabulary ${t.vocabSize}`,
        `embed:  ${arch.embedDim}`,
        `parameters: ${info.parameters.toLocaleString('en-US')} (${info.tensors} tensors, ${Object.entries(dtypes).map(([d, n]) => `${n} ${d}`).join(', ')}, ${manifest.format})`,
        `preprocess: ${preprocess.resizeMode} ${preprocess.interpolation} ${preprocess.size}px, mean [${preprocess.mean}], std [${preprocess.std}]`,
        'files:',
        ...fileList.map((f) => `  ${f.path}  ${formatBytes(f.bytes)}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });

  program
    .command('embed')
    .description('L2-normalized embeddings of texts (and images); prints {"image_embeds": [...], "text_embeds": [...]}')
    .requiredOption('--model <dir-or-name>', 'model directory, or a Hugging Face name')
    .option('--backend <name>', 'native | wasm | torch | auto', oneOf<BackendName | 'auto'>('native', 'wasm', 'torch', 'auto'), 'auto')
    .option('--device <device>', 'cpu | cuda', oneOf<Device>('cpu', 'cuda'), 'cpu')
    .option('--precision <p>', 'fp32 | bf16 (default fp32; bf16 on the wasm backend)', oneOf<Precision>('fp32', 'bf16'))
    .option('--threads <n>', 'CPU threads (default: all cores)', positiveInt)
    .option('--packed-cache <dir>', PACKED_CACHE_HELP)
    .option('--image <path>', 'an image file (repeatable)', collect, [])
    .option('--text <s>', 'a text (repeatable)', collect, [])
    .option('--json', 'print JSON (the only format)', true)
    .action(async (opts: ModelFlags & { image: string[]; text: string[] }) => {
      if (opts.image.length === 0 && opts.text.length === 0) throw new ClipError('E_INVALID_ARGUMENT', 'give at least one --text or --image');
      const clip = await Clip.load(await resolveModelArgument(opts.model), loadOptionsOf(opts));
      try {
        const result: Record<string, number[][]> = {};
        if (opts.image.length > 0) result.image_embeds = (await clip.embedImages(opts.image)).toArray();
        if (opts.text.length > 0) result.text_embeds = (await clip.embedTexts(opts.text)).toArray();
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } finally {
        clip.dispose();
      }
    });

  registerImageCommands(program);
  registerServeCommands(program);
  registerBackends(program);
  registerIndex(program);
  registerSearch(program);
  registerHubCommands(program);
  registerEmbedShards(program);
  registerQueueCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) {
      // commander already printed usage or help; help and version exit 0
      return e.exitCode ?? 1;
    }
    const code = err instanceof ClipError ? err.code : 'E_UNEXPECTED';
    process.stderr.write(`convnext-clip: ${e.message ?? String(err)} [${code}]\n`);
    return err instanceof ClipError && err.code === 'E_INVALID_ARGUMENT' ? 2 : 1;
  }
}
