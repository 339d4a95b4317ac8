/** The CUDA kernels of the torch backend compile for sm_90 with nvcc (no GPU needed), with warnings as errors. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { projectRoot } from './helpers/fixtures.js';

function findNvcc(): string | undefined {
  if (process.env.NVCC) return process.env.NVCC;
  try {
    return execFileSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return existsSync('/usr/local/cuda/bin/nvcc') ? '/usr/local/cuda/bin/nvcc' : undefined;
  }
}

const nvcc = findNvcc();

test('torch CUDA kernels compile with nvcc -arch=sm_90', { skip: nvcc ? false : 'nvcc not found (install the CUDA toolkit to run this check)', timeout: 600_000 }, (t) => {
  const script = path.join(projectRoot, 'scripts', 'compile-cuda-kernels.sh');
  const run = spawnSync('bash', [script, 'sm_90'], { encoding: 'utf8', env: { ...process.env, NVCC: nvcc!, CCLIP_REQUIRE_NVCC: '1' } });
  const lines = `${run.stdout}${run.stderr}`.trim().split('\n');
  for (const line of lines) t.comment(line);
  t.equal(run.status, 0, 'compile-cuda-kernels.sh exits 0');
  t.ok(lines.some((l) => l.startsWith('ok   native/torch/kernels/dwconv_ln.cu')), 'dwconv_ln.cu compiled');
  t.notOk(lines.some((l) => l.startsWith('FAIL')), 'no file failed');
  t.end();
});
