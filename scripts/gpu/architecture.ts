/**
 * Prints the architecture (lib/architecture.ts ClipArchitecture, as JSON) of an open_clip_config.json: what
 * scripts/gpu/model_spec.py puts in the load request for the GPU tools, so the architecture is parsed in one
 * place (TypeScript) even on GPU machines without Node.
 *   node --import tsx scripts/gpu/architecture.ts MODEL_DIR/open_clip_config.json > architecture.json
 */
import { readFileSync } from 'node:fs';
import { parseModelConfig } from '../../lib/architecture.js';

const file = process.argv[2];
if (!file) {
  console.error('usage: architecture.ts open_clip_config.json');
  process.exit(2);
}
const config = JSON.parse(readFileSync(file, 'utf8')) as { model_cfg?: unknown };
process.stdout.write(`${JSON.stringify(parseModelConfig(config.model_cfg))}\n`);
