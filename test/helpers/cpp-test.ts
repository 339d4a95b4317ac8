/** Runs a C++ test program's build-and-run script and checks its "N passed, M failed" summary. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type test from 'tape';
import { projectRoot } from './fixtures.js';

const run = promisify(execFile);

export async function runCppTest(t: test.Test, name: string, command: string[], minPassed: number, timeoutMs: number): Promise<void> {
  let output: string;
  try {
    ({ stdout: output } = await run('bash', command, { cwd: projectRoot, maxBuffer: 64 << 20, timeout: timeoutMs }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    t.fail(`${name} failed: ${e.message}\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-4000)}`);
    return;
  }
  const summary = /(\d+) passed, (\d+) failed/.exec(output);
  t.ok(summary, `${name} printed its summary`);
  if (!summary) return;
  t.equal(Number(summary[2]), 0, `${summary[2]} C++ checks failed`);
  t.ok(Number(summary[1]) >= minPassed, `${summary[1]} C++ checks passed`);
}
