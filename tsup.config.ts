import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'lib/index.ts', bin: 'lib/bin.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: { index: 'lib/index.ts' } },
  shims: true,
  clean: true,
  target: 'node20',
  sourcemap: true,
  // optional dependencies are imported lazily at run time, never bundled
  external: ['@lancedb/lancedb', 'apache-arrow'],
});
