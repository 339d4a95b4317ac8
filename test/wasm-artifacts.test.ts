/** The committed wasm build (wasm/prebuilt) is complete and was built from the sources in this tree. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'tape';
import { WASM_FILES, readBuildInfo, wasmArtifacts, wasmSources, wasmSourcesHash } from '../lib/backends/wasm-artifacts.js';

test('wasm/prebuilt: every artefact is there', (t) => {
  const artifacts = wasmArtifacts();
  if ('error' in artifacts) return t.fail(artifacts.error), t.end();
  for (const file of ['cclip.wasm', 'cclip-relaxed.wasm']) {
    const wasm = readFileSync(path.join(artifacts.dir, file));
    t.deepEqual([...wasm.subarray(0, 4)], [0, 0x61, 0x73, 0x6d], `${file} is a wasm module`);
  }
  t.equal(JSON.parse(readFileSync(path.join(artifacts.dir, 'package.json'), 'utf8')).type, 'commonjs', 'the glue is CommonJS');
  t.equal(WASM_FILES.length, 6, 'six files');
  t.end();
});

test('wasm/prebuilt: built from the current native/core and wasm/src (else run `npm run build:wasm`)', (t) => {
  const artifacts = wasmArtifacts();
  if ('error' in artifacts) return t.fail(artifacts.error), t.end();
  const info = readBuildInfo(artifacts.dir);
  const now = wasmSourcesHash(artifacts.root);
  t.equal(info.sourcesHash, now, `sources hash over ${wasmSources(artifacts.root).length} files matches BUILD_INFO.json` +
    (info.sourcesHash === now ? '' : ' (stale: native/core or wasm/src changed since the last `npm run build:wasm`)'));
  t.match(info.cxxflags, /-msimd128/, 'built with SIMD128');
  t.match(info.cxxflags, /-pthread/, 'built with pthreads');
  t.match(info.ldflags, /MAXIMUM_MEMORY=4GB/, '4 GB heap');
  t.end();
});
