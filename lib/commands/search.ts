/** `convnext-clip search "text" | --image <file> --db <dir> [--top K] [--json]`: ranked paths and scores. */
import type { Command } from 'commander';
import type { BackendName, Device, Precision } from '../backends/types.js';
import { Clip } from '../clip.js';
import { ClipError } from '../errors.js';
import { resolveModelArgument } from '../hub/cli.js';
import { Collection, MAX_TOP } from '../search/collection.js';
import { Store } from '../search/store.js';
import { PACKED_CACHE_HELP, loadOptionsOf, oneOf, positiveInt } from './options.js';

interface SearchFlags {
  db: string;
  image?: string;
  top: number;
  json?: boolean;
  exact?: boolean;
  model?: string;
  backend: BackendName | 'auto';
  device: Device;
  precision?: Precision;
  threads?: number;
  packedCache?: string;
}

export function registerSearch(program: Command): void {
  program
    .command('search')
    .description('search a collection made by `index` by text or by image; prints ranked paths and cosine scores')
    .argument('[text]', 'the text to search for')
    .requiredOption('--db <dir>', 'collection directory')
    .option('--image <file>', 'search by this image instead of a text')
    .option('--top <k>', `results (1..${MAX_TOP})`, positiveInt, 10)
    .option('--exact', 'skip the ANN index: exact search')
    .option('--json', 'print JSON: [{path, score, id}]')
    .option('--model <dir-or-name>', 'model (default: the one the collection was indexed with)')
    .option('--backend <name>', 'native | wasm | torch | auto', oneOf<BackendName | 'auto'>('native', 'wasm', 'torch', 'auto'), 'auto')
    .option('--device <device>', 'cpu | cuda', oneOf<Device>('cpu', 'cuda'), 'cpu')
    .option('--precision <p>', 'fp32 | bf16 (default: the collection\'s)', oneOf<Precision>('fp32', 'bf16'))
    .option('--threads <n>', 'CPU threads (default: all cores)', positiveInt)
    .option('--packed-cache <dir>', PACKED_CACHE_HELP)
    .action(async (text: string | undefined, flags: SearchFlags) => {
      if ((text === undefined) === (flags.image === undefined)) throw new ClipError('E_INVALID_ARGUMENT', 'give a text or --image <file>, not both');
      const stored = await Store.readIdentity(flags.db);
      const source = await resolveModelArgument(flags.model ?? stored.model);
      const clip = await Clip.load(source, loadOptionsOf({ ...flags, precision: flags.precision ?? (stored.precision as Precision) }));
      let collection: Collection | undefined;
      try {
        collection = await Collection.open(flags.db, clip, { mustExist: true, weights: source });
        const hits = await collection.search(text ?? { image: flags.image! }, { top: flags.top, exact: flags.exact });
        if (flags.json) process.stdout.write(`${JSON.stringify(hits.map((h) => ({ path: h.path, score: h.score, id: h.id })))}\n`);
        else process.stdout.write(hits.map((h) => `${h.score.toFixed(4)}  ${h.path}\n`).join(''));
      } finally {
        collection?.close();
        clip.dispose();
      }
    });
}
