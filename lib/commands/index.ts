/** Commands of the serving side: `serve`, `embed-dir` and `classify`. */
import type { Command } from 'commander';
import { registerClassify } from './classify.js';
import { registerEmbedDir } from './embed-dir.js';
import { registerServe } from './serve.js';

export function registerServeCommands(program: Command): void {
  registerServe(program);
  registerEmbedDir(program);
  registerClassify(program);
}
