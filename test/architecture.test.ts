import test from 'tape';
import { TIMM_CONVNEXT, expectedTensors, parameterCount, parseModelConfig } from '../lib/architecture.js';
import { ClipError } from '../lib/errors.js';

const xxlarge = {
  embed_dim: 1024,
  vision_cfg: { timm_model_name: 'convnext_xxlarge', timm_proj: 'linear', image_size: 256 },
  text_cfg: { width: 1024, heads: 16, layers: 24 },
};

function throwsCode(t: test.Test, fn: () => unknown, code: string, what: string) {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (err) {
    t.ok(err instanceof ClipError && err.code === code, `${what}: ${code} (${(err as Error).message})`);
  }
}

test('full ConvNeXt-XXLarge: defaults from the timm name, 1.2 B parameters', (t) => {
  const arch = parseModelConfig(xxlarge);
  t.deepEqual(arch.vision.depths, [3, 4, 30, 3]);
  t.deepEqual(arch.vision.dims, [384, 768, 1536, 3072]);
  t.equal(arch.vision.normEps, 1e-5);
  t.deepEqual(arch.text, { width: 1024, heads: 16, layers: 24, contextLength: 77, vocabSize: 49408, normEps: 1e-5 });
  // open_clip reports 1200.58 M parameters for convnext_xxlarge (846.5 M image + 354.0 M text + logit scale)
  const visual = [...expectedTensors(arch)].filter(([n]) => n.startsWith('visual.')).reduce((s, [, shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
  t.ok(Math.abs(visual / 1e6 - 846.5) < 0.5, `image tower ${(visual / 1e6).toFixed(1)} M parameters`);
  t.ok(Math.abs(parameterCount(arch) / 1e6 - 1200.6) < 1, `total ${(parameterCount(arch) / 1e6).toFixed(1)} M`);
  t.end();
});

test('eps per family, kwargs overrides, mlp head', (t) => {
  for (const [name, spec] of Object.entries(TIMM_CONVNEXT)) {
    const arch = parseModelConfig({ ...xxlarge, vision_cfg: { timm_model_name: name, image_size: 224 } });
    t.equal(arch.vision.normEps, spec.eps, `${name} eps`);
  }
  const arch = parseModelConfig({
    embed_dim: 40,
    vision_cfg: { timm_model_name: 'convnext_large', timm_proj: 'mlp', image_size: 96, timm_model_kwargs: { depths: [1, 1, 3, 1], dims: [16, 32, 48, 64] } },
    text_cfg: { width: 48, heads: 6, layers: 2 },
  });
  const tensors = expectedTensors(arch);
  t.deepEqual(tensors.get('visual.head.mlp.fc1.weight'), [80, 64]);
  t.deepEqual(tensors.get('visual.head.mlp.fc1.bias'), [80]);
  t.notOk(tensors.has('visual.head.mlp.fc2.bias'), 'fc2 has no bias unless timm_proj_bias');
  t.notOk(tensors.has('visual.trunk.stages.0.downsample.0.weight'), 'stage 0 has no downsample');
  t.deepEqual(tensors.get('visual.trunk.stages.3.downsample.1.weight'), [64, 48, 2, 2]);
  t.end();
});

test('bad configs are typed errors', (t) => {
  throwsCode(t, () => parseModelConfig({ ...xxlarge, vision_cfg: { timm_model_name: 'vit_large_patch14' } }), 'E_UNKNOWN_ARCHITECTURE', 'unknown timm model');
  throwsCode(t, () => parseModelConfig({ ...xxlarge, vision_cfg: { layers: 24, width: 1024, patch_size: 14 } }), 'E_UNKNOWN_ARCHITECTURE', 'ViT tower');
  throwsCode(t, () => parseModelConfig({ ...xxlarge, vision_cfg: { ...xxlarge.vision_cfg, timm_proj: 'attn' } }), 'E_UNKNOWN_ARCHITECTURE', 'unknown projection');
  throwsCode(t, () => parseModelConfig({ ...xxlarge, text_cfg: { width: 1000, heads: 16, layers: 2 } }), 'E_CONFIG', 'width not divisible by heads');
  throwsCode(t, () => parseModelConfig({ ...xxlarge, vision_cfg: { ...xxlarge.vision_cfg, image_size: 250 } }), 'E_CONFIG', 'image size not a multiple of 32');
  throwsCode(t, () => parseModelConfig({ ...xxlarge, vision_cfg: { ...xxlarge.vision_cfg, timm_model_kwargs: { depths: [1, 2] } } }), 'E_CONFIG', 'short depths');
  throwsCode(t, () => parseModelConfig({ ...xxlarge, embed_dim: -1 }), 'E_CONFIG', 'negative embed dim');
  throwsCode(t, () => parseModelConfig(null), 'E_CONFIG', 'null config');
  t.end();
});
