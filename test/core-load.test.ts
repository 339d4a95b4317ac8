/**
 * The load path of native/core (native/core/tests/load_test.cc: weights packed from a mapped checkpoint are
 * bit-identical to the pread path and the documented layout; first bad element named; truncated or shrinking
 * files refused without SIGBUS; consumed pages leave RSS), built with g++ by native/core/tests/run.sh.
 */
import path from 'node:path';
import test from 'tape';
import { runCppTest } from './helpers/cpp-test.js';
import { projectRoot } from './helpers/fixtures.js';

test('core load: mapped and pread loads pack bit-identical weights; corrupt, truncated and shrinking files are typed errors', async (t) => {
  t.timeoutAfter(300_000);
  await runCppTest(t, 'load_test', [path.join(projectRoot, 'native', 'core', 'tests', 'run.sh'), '--test', 'load_test'], 130, 290_000);
});
