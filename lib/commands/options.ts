/** Option parsers and the model options shared by serve, embed-dir and classify. */
import { type Command, InvalidArgumentError } from 'commander';
import type { BackendName, Device, Precision } from '../backends/types.js';
import { Clip } from '../clip.js';
import { resolveModelArgument } from '../hub/cli.js';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

export function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0..65535 (0: any free port)');
  return n;
}

export function oneOf<T extends string>(...choices: T[]) {
  return (value: string): T => {
    if (!choices.includes(value as T)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')}`);
    return value as T;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export interface ModelFlags {
  model: string;
  backend: BackendName | 'auto';
  device: Device;
  precision: Precision;
  threads?: number;
  packedCache?: string;
}

export const PACKED_CACHE_HELP = 'native backend: keep packed weights in <dir>; the first load writes them (the size of the weights), later loads map them (seconds faster)';

/** The Clip.load options of these flags. */
export function loadOptionsOf(flags: Omit<ModelFlags, 'model'>) {
  return { backend: flags.backend, device: flags.device, precision: flags.precision, threads: flags.threads ?? 0, packedCache: flags.packedCache };
}

/** --model (required), --backend, --device, --precision, --threads, --packed-cache. */
export function modelOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--model <dir-or-name>', 'model directory, or a Hugging Face name')
    .option('--backend <name>', 'native | wasm | torch | auto', oneOf<BackendName | 'auto'>('native', 'wasm', 'torch', 'auto'), 'auto')
    .option('--device <device>', 'cpu | cuda', oneOf<Device>('cpu', 'cuda'), 'cpu')
    .option('--precision <p>', 'fp32 | bf16 (default fp32; bf16 on the wasm backend)', oneOf<Precision>('fp32', 'bf16'))
    .option('--threads <n>', 'CPU threads (default: all cores)', positiveInt)
    .option('--packed-cache <dir>', PACKED_CACHE_HELP);
}

export async function loadModel(flags: ModelFlags): Promise<Clip> {
  return (await loadModelFrom(flags)).clip;
}

/** The model and the local directory (or file) it was loaded from, after any Hub download. */
export async function loadModelFrom(flags: ModelFlags): Promise<{ clip: Clip; source: string }> {
  const source = await resolveModelArgument(flags.model);
  return { clip: await Clip.load(source, loadOptionsOf(flags)), source };
}
