/**
 * open_clip_config.json -> the architecture we run, and the exact list of tensors (name -> shape) it needs.
 * Names follow open_clip + timm state-dict keys, so a laion checkpoint maps one to one.
 */
import { ClipError } from './errors.js';
import { invalid, is } from './validate.js';

export interface VisionArchitecture {
  timmModelName: string;
  depths: [number, number, number, number];
  dims: [number, number, number, number];
  /** LayerNorm epsilon of every norm in the trunk (timm: 1e-6, except convnext_xxlarge 1e-5). */
  normEps: number;
  imageSize: number;
  proj: 'linear' | 'mlp';
  projBias: boolean;
}

export interface TextArchitecture {
  width: number;
  heads: number;
  layers: number;
  contextLength: number;
  vocabSize: number;
  /** LayerNorm epsilon of every norm in the text transformer (open_clip text_cfg.norm_kwargs.eps; default 1e-5). */
  normEps: number;
}

export interface ClipArchitecture {
  embedDim: number;
  vision: VisionArchitecture;
  text: TextArchitecture;
}

/** timm ConvNeXt variants OpenCLIP uses: depths, dims, LayerNorm eps. */
export const TIMM_CONVNEXT: Record<string, { depths: number[]; dims: number[]; eps: number }> = {
  convnext_base: { depths: [3, 3, 27, 3], dims: [128, 256, 512, 1024], eps: 1e-6 },
  convnext_large: { depths: [3, 3, 27, 3], dims: [192, 384, 768, 1536], eps: 1e-6 },
  convnext_xlarge: { depths: [3, 3, 27, 3], dims: [256, 512, 1024, 2048], eps: 1e-6 },
  convnext_xxlarge: { depths: [3, 4, 30, 3], dims: [384, 768, 1536, 3072], eps: 1e-5 },
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function positiveInt(v: unknown, what: string, max = 1 << 20): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > max) {
    throw new ClipError('E_CONFIG', `${what} must be a positive integer (up to ${max}), got ${JSON.stringify(v)}`);
  }
  return v;
}

function intList4(v: unknown, what: string): [number, number, number, number] {
  if (!Array.isArray(v) || v.length !== 4) {
    throw new ClipError('E_CONFIG', `${what} must be a list of 4 integers, got ${JSON.stringify(v)}`);
  }
  return v.map((x, i) => positiveInt(x, `${what}[${i}]`, 1 << 16)) as [number, number, number, number];
}

/** Parses `model_cfg` of open_clip_config.json into the architecture we implement. */
export function parseModelConfig(modelCfg: unknown): ClipArchitecture {
  if (!isObject(modelCfg)) throw new ClipError('E_CONFIG', 'model_cfg must be an object');
  const vision = modelCfg.vision_cfg;
  const text = modelCfg.text_cfg;
  if (!isObject(vision)) throw new ClipError('E_CONFIG', 'model_cfg.vision_cfg must be an object');
  if (!isObject(text)) throw new ClipError('E_CONFIG', 'model_cfg.text_cfg must be an object');

  const timmModelName = vision.timm_model_name;
  if (typeof timmModelName !== 'string' || !(timmModelName in TIMM_CONVNEXT)) {
    const hint = vision.layers !== undefined || vision.patch_size !== undefined ? ' (a ViT tower: only ConvNeXt towers are supported)' : '';
    throw new ClipError(
      'E_UNKNOWN_ARCHITECTURE',
      `unsupported vision tower ${JSON.stringify(timmModelName)}${hint}; supported timm models: ${Object.keys(TIMM_CONVNEXT).join(', ')}`,
    );
  }
  const base = TIMM_CONVNEXT[timmModelName];
  const kwargs = vision.timm_model_kwargs ?? {};
  if (!isObject(kwargs)) throw new ClipError('E_CONFIG', 'vision_cfg.timm_model_kwargs must be an object');
  const proj = vision.timm_proj ?? 'linear';
  if (proj !== 'linear' && proj !== 'mlp') {
    throw new ClipError('E_UNKNOWN_ARCHITECTURE', `unsupported timm_proj ${JSON.stringify(proj)} (supported: linear, mlp)`);
  }
  const pool = vision.timm_pool ?? '';
  if (pool !== '' && pool !== 'avg') {
    throw new ClipError('E_UNKNOWN_ARCHITECTURE', `unsupported timm_pool ${JSON.stringify(pool)} (supported: "" and "avg")`);
  }
  const eps = kwargs.norm_eps ?? base.eps;
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1)) throw new ClipError('E_CONFIG', `timm_model_kwargs.norm_eps must be in (0, 1), got ${JSON.stringify(eps)}`);

  const width = positiveInt(text.width ?? 512, 'text_cfg.width', 1 << 16);
  const heads = positiveInt(text.heads ?? 8, 'text_cfg.heads', 1024);
  if (width % heads !== 0) throw new ClipError('E_CONFIG', `text_cfg.width ${width} is not a multiple of text_cfg.heads ${heads}`);
  if (text.hf_model_name !== undefined) throw new ClipError('E_UNKNOWN_ARCHITECTURE', 'Hugging Face text towers (hf_model_name) are not supported');

  return {
    embedDim: positiveInt(modelCfg.embed_dim, 'model_cfg.embed_dim', 1 << 16),
    vision: {
      timmModelName,
      depths: intList4(kwargs.depths ?? base.depths, 'vision depths'),
      dims: intList4(kwargs.dims ?? base.dims, 'vision dims'),
      normEps: eps,
      imageSize: imageSizeOf(vision.image_size ?? 224),
      proj,
      projBias: Boolean(vision.timm_proj_bias ?? false),
    },
    text: {
      width,
      heads,
      layers: positiveInt(text.layers ?? 12, 'text_cfg.layers', 1024),
      contextLength: positiveInt(text.context_length ?? 77, 'text_cfg.context_length', 1 << 16),
      vocabSize: positiveInt(text.vocab_size ?? 49408, 'text_cfg.vocab_size', 1 << 24),
      normEps: textNormEps(text.norm_kwargs),
    },
  };
}

function textNormEps(normKwargs: unknown): number {
  if (normKwargs === undefined) return 1e-5;
  if (!isObject(normKwargs)) throw new ClipError('E_CONFIG', 'text_cfg.norm_kwargs must be an object');
  const eps = normKwargs.eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1)) throw new ClipError('E_CONFIG', `text_cfg.norm_kwargs.eps must be in (0, 1), got ${JSON.stringify(eps)}`);
  return eps;
}

function imageSizeOf(v: unknown): number {
  const size = Array.isArray(v) ? v : [v, v];
  const [h, w] = size.map((x, i) => positiveInt(x, `vision_cfg.image_size[${i}]`, 1 << 14));
  if (h !== w) throw new ClipError('E_CONFIG', `non-square image_size ${JSON.stringify(v)} is not supported`);
  if (h % 32 !== 0) throw new ClipError('E_CONFIG', `image_size ${h} must be a multiple of 32 (ConvNeXt downsamples by 32)`);
  return h;
}

/** Every tensor the architecture reads, in load order, with its shape. */
export function expectedTensors(arch: ClipArchitecture): Map<string, number[]> {
  if (!is.plainObject(arch) || !is.plainObject(arch.vision) || !is.plainObject(arch.text)) throw invalid('a ClipArchitecture (from parseModelConfig)', 'arch', arch);
  const out = new Map<string, number[]>();
  const { vision: v, text: t, embedDim } = arch;
  const trunk = 'visual.trunk';
  out.set(`${trunk}.stem.0.weight`, [v.dims[0], 3, 4, 4]);
  out.set(`${trunk}.stem.0.bias`, [v.dims[0]]);
  out.set(`${trunk}.stem.1.weight`, [v.dims[0]]);
  out.set(`${trunk}.stem.1.bias`, [v.dims[0]]);
  for (let s = 0; s < 4; s++) {
    const dim = v.dims[s];
    const stage = `${trunk}.stages.${s}`;
    if (s > 0) {
      const prev = v.dims[s - 1];
      out.set(`${stage}.downsample.0.weight`, [prev]);
      out.set(`${stage}.downsample.0.bias`, [prev]);
      out.set(`${stage}.downsample.1.weight`, [dim, prev, 2, 2]);
      out.set(`${stage}.downsample.1.bias`, [dim]);
    }
    for (let b = 0; b < v.depths[s]; b++) {
      const block = `${stage}.blocks.${b}`;
      out.set(`${block}.conv_dw.weight`, [dim, 1, 7, 7]);
      out.set(`${block}.conv_dw.bias`, [dim]);
      out.set(`${block}.norm.weight`, [dim]);
      out.set(`${block}.norm.bias`, [dim]);
      out.set(`${block}.mlp.fc1.weight`, [4 * dim, dim]);
      out.set(`${block}.mlp.fc1.bias`, [4 * dim]);
      out.set(`${block}.mlp.fc2.weight`, [dim, 4 * dim]);
      out.set(`${block}.mlp.fc2.bias`, [dim]);
      out.set(`${block}.gamma`, [dim]);
    }
  }
  const features = v.dims[3];
  out.set(`${trunk}.head.norm.weight`, [features]);
  out.set(`${trunk}.head.norm.bias`, [features]);
  if (v.proj === 'linear') {
    out.set('visual.head.proj.weight', [embedDim, features]);
    if (v.projBias) out.set('visual.head.proj.bias', [embedDim]);
  } else {
    out.set('visual.head.mlp.fc1.weight', [2 * embedDim, features]);
    out.set('visual.head.mlp.fc1.bias', [2 * embedDim]);
    out.set('visual.head.mlp.fc2.weight', [embedDim, 2 * embedDim]);
    if (v.projBias) out.set('visual.head.mlp.fc2.bias', [embedDim]);
  }

  out.set('token_embedding.weight', [t.vocabSize, t.width]);
  out.set('positional_embedding', [t.contextLength, t.width]);
  for (let l = 0; l < t.layers; l++) {
    const block = `transformer.resblocks.${l}`;
    out.set(`${block}.ln_1.weight`, [t.width]);
    out.set(`${block}.ln_1.bias`, [t.width]);
    out.set(`${block}.attn.in_proj_weight`, [3 * t.width, t.width]);
    out.set(`${block}.attn.in_proj_bias`, [3 * t.width]);
    out.set(`${block}.attn.out_proj.weight`, [t.width, t.width]);
    out.set(`${block}.attn.out_proj.bias`, [t.width]);
    out.set(`${block}.ln_2.weight`, [t.width]);
    out.set(`${block}.ln_2.bias`, [t.width]);
    out.set(`${block}.mlp.c_fc.weight`, [4 * t.width, t.width]);
    out.set(`${block}.mlp.c_fc.bias`, [4 * t.width]);
    out.set(`${block}.mlp.c_proj.weight`, [t.width, 4 * t.width]);
    out.set(`${block}.mlp.c_proj.bias`, [t.width]);
  }
  out.set('ln_final.weight', [t.width]);
  out.set('ln_final.bias', [t.width]);
  out.set('text_projection', [t.width, embedDim]);
  out.set('logit_scale', []);
  return out;
}

export function parameterCount(arch: ClipArchitecture): number {
  let n = 0;
  for (const shape of expectedTensors(arch).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}
