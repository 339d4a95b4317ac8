/** The C++ GEMM and thread-pool unit tests (native/core/tests/gemm_test.cc), built with g++ and run here. */
import path from 'node:path';
import test from 'tape';
import { runCppTest } from './helpers/cpp-test.js';
import { projectRoot } from './helpers/fixtures.js';

test('core GEMM + thread pool: every shape, precision, epilogue and ISA against a double reference', async (t) => {
  t.timeoutAfter(600_000);
  await runCppTest(t, 'gemm_test', [path.join(projectRoot, 'bench', 'gemm', 'run.sh'), 'test'], 1001, 590_000);
});
