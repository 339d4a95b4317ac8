/**
 * A model directory laid out like the laion Hugging Face repos: open_clip_config.json, weights
 * (open_clip_model.safetensors, else open_clip_pytorch_model.bin / .pt / .pth) and the vocabulary
 * (vocab.json + merges.txt, else bpe_simple_vocab_16e6.txt.gz). Every file can also be given explicitly.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { type ClipArchitecture, expectedTensors, parseModelConfig } from './architecture.js';
import { readManifest } from './checkpoint/index.js';
import { ClipError } from './errors.js';
import { FILE_LIMITS, readRegularFile } from './fs/read-file.js';
import { type TensorManifest, WEIGHT_DTYPES } from './manifest.js';
import { type PreprocessConfig, parsePreprocessConfig } from './preprocess-config.js';
import { invalid, is } from './validate.js';

export { OPENAI_MEAN, OPENAI_STD, type PreprocessConfig, parsePreprocessConfig } from './preprocess-config.js';

export type VocabularyFiles = { vocabJson: string; mergesTxt: string } | { bpeGz: string };

export interface ModelPaths {
  /** The model directory; the other paths default to the files inside it. */
  dir?: string;
  config?: string;
  weights?: string;
  vocabulary?: VocabularyFiles;
}

export interface ResolvedModelFiles {
  config: string;
  weights: string;
  vocabulary: VocabularyFiles | undefined;
}

export interface ModelDescription {
  files: ResolvedModelFiles;
  arch: ClipArchitecture;
  preprocess: PreprocessConfig;
  manifest: TensorManifest;
}

const WEIGHT_FILES = ['open_clip_model.safetensors', 'open_clip_pytorch_model.bin', 'open_clip_pytorch_model.pt', 'open_clip_pytorch_model.pth'];

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function firstExisting(dir: string, names: string[]): string | undefined {
  return names.map((n) => path.join(dir, n)).find((p) => existsSync(p));
}

export function findVocabulary(dir: string): VocabularyFiles | undefined {
  const vocabJson = path.join(dir, 'vocab.json');
  const mergesTxt = path.join(dir, 'merges.txt');
  if (existsSync(vocabJson) && existsSync(mergesTxt)) return { vocabJson, mergesTxt };
  const bpeGz = path.join(dir, 'bpe_simple_vocab_16e6.txt.gz');
  return existsSync(bpeGz) ? { bpeGz } : undefined;
}

/** Finds the config, weights and vocabulary of a model; throws E_NOT_FOUND naming what is missing. */
export function resolveModelFiles(source: string | ModelPaths): ResolvedModelFiles {
  if (!(typeof source === 'string' && source.length > 0) && !is.plainObject(source)) throw invalid('a model directory or {dir, config, weights, vocabulary} paths', 'source', source);
  const paths: ModelPaths = typeof source === 'string' ? { dir: source } : source;
  const dir = paths.dir === undefined ? undefined : path.resolve(paths.dir);
  if (dir !== undefined && !isDirectory(dir)) {
    throw new ClipError('E_NOT_FOUND', `model directory ${dir} does not exist (download a laion/CLIP-convnext_* repository from Hugging Face, or pass explicit file paths)`, { subject: dir });
  }
  const config = paths.config ? path.resolve(paths.config) : dir && path.join(dir, 'open_clip_config.json');
  if (!config || !existsSync(config)) {
    throw new ClipError('E_NOT_FOUND', `no open_clip_config.json ${dir ? `in ${dir}` : 'given'}`, { subject: config ?? dir });
  }
  const weights = paths.weights ? path.resolve(paths.weights) : dir && firstExisting(dir, WEIGHT_FILES);
  if (!weights || !existsSync(weights)) {
    throw new ClipError('E_NOT_FOUND', `no weights ${dir ? `in ${dir} (looked for ${WEIGHT_FILES.join(', ')})` : 'given'}`, { subject: weights ?? dir });
  }
  const vocabulary = paths.vocabulary ?? (dir ? findVocabulary(dir) : undefined);
  return { config, weights, vocabulary };
}

export async function readModelConfig(file: string): Promise<{ arch: ClipArchitecture; preprocess: PreprocessConfig }> {
  if (!(typeof file === 'string' && file.length > 0)) throw invalid('a path', 'file', file);
  let raw: unknown;
  try {
    raw = JSON.parse((await readRegularFile(file, { what: 'config', maxBytes: FILE_LIMITS.config })).toString('utf8'));
  } catch (err) {
    throw new ClipError('E_CONFIG', `cannot read ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  if (typeof raw !== 'object' || raw === null) throw new ClipError('E_CONFIG', `${file} is not a JSON object`, { subject: file });
  const json = raw as Record<string, unknown>;
  // open_clip_config.json nests model_cfg; a bare open_clip model config (embed_dim, vision_cfg, ...) works too.
  const modelCfg = json.model_cfg ?? (json.vision_cfg ? json : undefined);
  if (modelCfg === undefined) throw new ClipError('E_CONFIG', `${file} has no model_cfg`, { subject: file });
  try {
    const arch = parseModelConfig(modelCfg);
    return { arch, preprocess: parsePreprocessConfig(json.preprocess_cfg, arch.vision.imageSize) };
  } catch (err) {
    if (err instanceof ClipError) throw new ClipError(err.code, `${file}: ${err.message}`, { subject: file, cause: err });
    throw err;
  }
}

/** Checks that every tensor the architecture needs exists with its shape; names the first that does not. */
export function validateManifest(arch: ClipArchitecture, manifest: TensorManifest, file: string): void {
  for (const [name, shape] of expectedTensors(arch)) {
    const entry = manifest.tensors.get(name);
    if (!entry) {
      throw new ClipError('E_TENSOR_MISSING', `${file} has no tensor ${name} (expected shape [${shape}]); is this checkpoint for this config?`, { subject: name });
    }
    const same = entry.shape.length === shape.length && entry.shape.every((d, i) => d === shape[i]);
    if (!same) {
      throw new ClipError('E_TENSOR_SHAPE', `${file}: tensor ${name} has shape [${entry.shape}], expected [${shape}]`, { subject: name });
    }
    if (!WEIGHT_DTYPES.has(entry.dtype)) {
      throw new ClipError('E_TENSOR_SHAPE', `${file}: tensor ${name} has dtype ${entry.dtype}, expected F32, F16 or BF16`, { subject: name });
    }
  }
}

/** Reads the config and the tensor manifest of a model and checks they agree. No tensor bytes are read. */
export async function describeModel(source: string | ModelPaths): Promise<ModelDescription> {
  const files = resolveModelFiles(source);
  const { arch, preprocess } = await readModelConfig(files.config);
  const manifest = await readManifest(files.weights);
  validateManifest(arch, manifest, files.weights);
  return { files, arch, preprocess, manifest };
}
