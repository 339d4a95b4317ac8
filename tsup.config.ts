import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const manifest = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
};

export default defineConfig({
  entry: { index: 'lib/index.ts', bin: 'lib/bin.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'lib/index.ts' } },
  shims: true,
  clean: true,
  target: 'node20',
  sourcemap: true,
  // optional dependencies and optional peers (bullmq, ioredis; LanceDB's Arrow peer) are imported lazily at run
  // time, never bundled: a bundled copy would ship megabytes and ignore the user's installed version
  external: [...Object.keys(manifest.optionalDependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {}), 'apache-arrow'],
});
