/** Temp folder and error assertions shared by the checkpoint tests. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type test from 'tape';
import { type ClipErrorCode, isClipError } from '../../lib/errors.js';

/** A temp folder removed when the process exits (or is interrupted). */
export function tempFolder(prefix: string): { dir: string; write(name: string, bytes: Uint8Array): string } {
  const dir = mkdtempSync(path.join(tmpdir(), `convnext-clip-${prefix}-`));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      cleanup();
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    });
  }
  return {
    dir,
    write(name, bytes) {
      const file = path.join(dir, name);
      writeFileSync(file, bytes);
      return file;
    },
  };
}

/** Asserts `work` rejects with a ClipError of `code` (and a message matching `pattern`, when given). */
export async function rejectsWith(t: test.Test, work: Promise<unknown> | (() => unknown), code: ClipErrorCode, what: string, pattern?: RegExp): Promise<void> {
  try {
    await (typeof work === 'function' ? work() : work);
    t.fail(`${what}: did not throw`);
  } catch (err) {
    const ok = isClipError(err, code) && (!pattern || pattern.test(err.message));
    t.ok(ok, `${what}: ${code}${ok ? '' : ` expected, got ${(err as { code?: string }).code ?? (err as Error).name}`} (${String((err as Error).message).slice(0, 160)})`);
  }
}
