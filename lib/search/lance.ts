/**
 * LanceDB (an optional dependency, ~155 MB native) and its Arrow peer, imported only when a collection is opened,
 * so that embedding alone never loads them. Missing: a ClipError naming the install command.
 */
import { createRequire } from 'node:module';
import { ClipError } from '../errors.js';

export type LanceModule = typeof import('@lancedb/lancedb');
export type ArrowModule = typeof import('apache-arrow');

export const LANCEDB_INSTALL = 'npm install @lancedb/lancedb@0.31.0';

let loaded: Promise<{ lancedb: LanceModule; arrow: ArrowModule }> | undefined;

export function loadLance(): Promise<{ lancedb: LanceModule; arrow: ArrowModule }> {
  loaded ??= (async () => {
    process.env.LANCEDB_LOG ??= 'error'; // lance logs a warning for every table it creates
    try {
      const lancedb = await import('@lancedb/lancedb');
      // The CommonJS Arrow that LanceDB itself requires: an ESM import would be a second copy whose tables
      // LanceDB does not recognize.
      const fromLance = createRequire(createRequire(import.meta.url).resolve('@lancedb/lancedb'));
      const arrow = fromLance('apache-arrow') as ArrowModule;
      return { lancedb, arrow };
    } catch (err) {
      loaded = undefined;
      throw new ClipError('E_BACKEND_UNAVAILABLE', `search needs LanceDB, an optional dependency that is not installed or failed to load: run \`${LANCEDB_INSTALL}\` (${(err as Error).message})`, { cause: err });
    }
  })();
  return loaded;
}
