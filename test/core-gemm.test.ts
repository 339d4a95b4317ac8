/** The C++ GEMM and thread-pool unit tests (native/core/tests/gemm_test.cc), built with g++ and run here. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);

test('core GEMM + thread pool: every shape, precision, epilogue and ISA against a double reference', async (t) => {
  let output: string;
  try {
    ({ stdout: output } = await run('bash', [path.join(projectRoot, 'bench', 'gemm', 'run.sh'), 'test'], { cwd: projectRoot, maxBuffer: 64 << 20 }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    t.fail(`gemm_test failed: ${e.message}\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-4000)}`);
    return;
  }
  const summary = /(\d+) passed, (\d+) failed/.exec(output);
  t.ok(summary, 'gemm_test printed its summary');
  if (!summary) return;
  t.equal(Number(summary[2]), 0, `${summary[2]} C++ checks failed`);
  t.ok(Number(summary[1]) > 1000, `${summary[1]} C++ checks passed`);
});
