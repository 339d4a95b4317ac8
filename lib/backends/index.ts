/** The backend registry: `auto` picks the first available of the preference order for the device. */
import type { ClipArchitecture } from '../architecture.js';
import { ClipError } from '../errors.js';
import type { TensorManifest } from '../manifest.js';
import { nativeBackend } from './native.js';
import { torchBackend } from './torch.js';
import { wasmBackend } from './wasm.js';
import type { Backend, BackendLoadOptions, BackendModel, BackendName, BackendSelection, Device, Precision } from './types.js';
import { invalid, is } from '../validate.js';

const registry = new Map<BackendName, Backend>([
  [nativeBackend.name, nativeBackend],
  [torchBackend.name, torchBackend],
  [wasmBackend.name, wasmBackend],
]);

export const BACKEND_NAMES: readonly BackendName[] = ['native', 'wasm', 'torch'];

/** Adds or replaces a backend (used by optional builds and by tests). */
export function registerBackend(backend: Backend): void {
  const b = backend as Partial<Backend> | null;
  if (!is.plainObject(b) || !BACKEND_NAMES.includes(b.name as BackendName) || typeof b.available !== 'function' || typeof b.load !== 'function') {
    throw invalid(`a Backend {name: ${BACKEND_NAMES.join(' | ')}, available(), load()}`, 'backend', backend);
  }
  registry.set(backend.name, backend);
}

export function getBackend(name: BackendName): Backend | undefined {
  return registry.get(name);
}

function preference(device: Device): BackendName[] {
  return device === 'cuda' ? ['torch'] : ['native', 'torch', 'wasm'];
}

/** wasm keeps weights in a 4 GB heap: bf16 by default there (the full XXLarge needs 4.5 GiB in fp32). */
function defaultPrecision(name: BackendName): Precision {
  return name === 'wasm' ? 'bf16' : 'fp32';
}

const selections = new WeakMap<BackendModel, BackendSelection>();

/** How `model` was chosen by loadWithBackend (undefined for a model made elsewhere). */
export function backendSelection(model: BackendModel): BackendSelection | undefined {
  return selections.get(model);
}

/**
 * Loads with the named backend, or with `auto` tries each in order; one error says why each failed.
 * Without a precision, each backend takes its default (fp32; bf16 for wasm).
 */
export async function loadWithBackend(
  requested: BackendName | 'auto',
  arch: ClipArchitecture,
  manifest: TensorManifest,
  options: Omit<BackendLoadOptions, 'precision'> & { precision?: Precision },
): Promise<BackendModel> {

  const candidates = requested === 'auto' ? preference(options.device) : [requested];
  const skipped: BackendSelection['skipped'] = [];
  const skip = (backend: BackendName, reason: string) => skipped.push({ backend, reason });
  for (const name of candidates) {
    const backend = registry.get(name);
    if (!backend) {
      skip(name, 'not part of this build');
      continue;
    }
    const status = backend.available(options.device);
    if (!status.ok) {
      skip(name, status.reason);
      continue;
    }
    const withPrecision = { ...options, precision: options.precision ?? defaultPrecision(name) };
    const chosen = (model: BackendModel) => {
      selections.set(model, { backend: name, detail: backend.describe?.(), skipped: [...skipped] });
      return model;
    };
    if (requested !== 'auto') return chosen(await backend.load(arch, manifest, withPrecision));
    try {
      return chosen(await backend.load(arch, manifest, withPrecision));
    } catch (err) {
      // A broken checkpoint fails the same way everywhere: report it rather than trying the next backend.
      if (err instanceof ClipError && err.code !== 'E_BACKEND_UNAVAILABLE') throw err;
      skip(name, (err as Error).message);
    }
  }
  throw new ClipError('E_BACKEND_UNAVAILABLE', `no backend could run on ${options.device}: ${skipped.map((s) => `${s.backend}: ${s.reason}`).join('; ')}`);
}
