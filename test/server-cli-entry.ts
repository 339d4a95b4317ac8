/** Test-only entry: the real program (lib/cli.ts) plus the serve commands, with main()'s error printing. */
import { buildProgram } from '../lib/cli.js';
import { registerServeCommands } from '../lib/commands/index.js';
import { ClipError } from '../lib/errors.js';

const program = buildProgram();
if (!program.commands.some((c) => c.name() === 'serve')) registerServeCommands(program);
try {
  await program.parseAsync(process.argv.slice(2), { from: 'user' });
} catch (err) {
  const e = err as { code?: string; exitCode?: number; message?: string };
  if (typeof e.code === 'string' && e.code.startsWith('commander.')) process.exitCode = e.exitCode ?? 1;
  else {
    process.stderr.write(`convnext-clip: ${e.message ?? String(err)} [${err instanceof ClipError ? err.code : 'E_UNEXPECTED'}]\n`);
    process.exitCode = err instanceof ClipError && err.code === 'E_INVALID_ARGUMENT' ? 2 : 1;
  }
}
