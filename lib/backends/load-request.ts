/**
 * The one load request every engine parses (native/core/spec.h parse_load_request): the architecture, the
 * tensors the towers read, and the load options, as JSON. The native and torch addons, the wasm module and
 * the GPU tools all take this text; a field added on one side only is refused by the other, never misread.
 * No Node imports (the browser build of the wasm backend uses it).
 */
import type { ClipArchitecture } from '../architecture.js';
import type { TensorEntry } from '../manifest.js';
import type { Device, Precision } from './types.js';

export interface LoadRequestOptions {
  precision: Precision;
  threads?: number;
  /** torch only */
  device?: Device;
  graphs?: boolean;
  fused?: boolean;
  deviceIndex?: number;
  /** native core: directory of packed-weights files */
  packedCache?: string;
}

export interface LoadRequest {
  architecture: ClipArchitecture;
  tensors: TensorEntry[];
  options: LoadRequestOptions;
  /** wasm: the byte size of each weight source, by the file name the tensors use. */
  sources?: Array<{ file: string; size: number }>;
}

export function loadRequestJson(request: LoadRequest): string {
  const tensors = request.tensors.map(({ name, dtype, shape, strides, file, offset, byteLength }) => ({ name, dtype, shape, strides, file, offset, byteLength }));
  return JSON.stringify({ ...request, tensors });
}
