/**
 * Op-level tests of native/core (native/core/tests/ops_test.cc: every op against a double reference, the weight
 * reader and the load-request contract), built with g++ by native/core/tests/run.sh and run here.
 */
import path from 'node:path';
import test from 'tape';
import { runCppTest } from './helpers/cpp-test.js';
import { projectRoot } from './helpers/fixtures.js';

test('core ops, weight reader and load request against plain references', async (t) => {
  t.timeoutAfter(300_000);
  await runCppTest(t, 'ops_test', [path.join(projectRoot, 'native', 'core', 'tests', 'run.sh')], 150, 290_000);
});
