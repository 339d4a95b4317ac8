/**
 * Op-level tests of native/core (native/core/tests/ops_test.cc: every op against a double reference, the weight
 * reader and the load-request contract), built with g++ by native/core/tests/run.sh and run here.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'tape';
import { projectRoot } from './helpers/fixtures.js';

const run = promisify(execFile);

test('core ops, weight reader and load request against plain references', async (t) => {
  t.timeoutAfter(300_000);
  let output: string;
  try {
    ({ stdout: output } = await run('bash', [path.join(projectRoot, 'native', 'core', 'tests', 'run.sh')], {
      cwd: projectRoot,
      maxBuffer: 16 << 20,
      timeout: 290_000,
    }));
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    t.fail(`ops_test failed: ${e.message}\n${(e.stdout ?? '').slice(-4000)}\n${(e.stderr ?? '').slice(-4000)}`);
    return;
  }
  const summary = /(\d+) passed, (\d+) failed/.exec(output);
  t.ok(summary, 'ops_test printed its summary');
  if (!summary) return;
  t.equal(Number(summary[2]), 0, `${summary[2]} C++ checks failed`);
  t.ok(Number(summary[1]) >= 150, `${summary[1]} C++ checks passed`);
});
