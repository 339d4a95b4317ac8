/**
 * The model contract (native/core/spec.h) as every engine sees it: a field of the architecture reaches the
 * towers (text.normEps, from open_clip's text_cfg.norm_kwargs.eps), and a field one side sends that the other
 * does not know is refused, never silently dropped.
 */
import test from 'tape';
import { parseModelConfig } from '../lib/architecture.js';
import { nativeBackend } from '../lib/backends/native.js';
import { torchBackend } from '../lib/backends/torch.js';
import type { Backend } from '../lib/backends/types.js';
import { wasmBackend } from '../lib/backends/wasm.js';
import { rejectsWith } from './helpers/checkpoint-tmp.js';
import { fixtureModel, maxRelativeDiff } from './native-helpers.js';

test('text_cfg.norm_kwargs.eps becomes text.normEps (default 1e-5); bad values are E_CONFIG', (t) => {
  const cfg = (text: Record<string, unknown>) => ({ embed_dim: 64, vision_cfg: { timm_model_name: 'convnext_base' }, text_cfg: text });
  t.equal(parseModelConfig(cfg({})).text.normEps, 1e-5, 'default');
  t.equal(parseModelConfig(cfg({ norm_kwargs: { eps: 1e-6 } })).text.normEps, 1e-6, 'from norm_kwargs');
  t.throws(() => parseModelConfig(cfg({ norm_kwargs: { eps: 0 } })), /norm_kwargs\.eps/, 'eps 0 refused');
  t.end();
});

for (const backend of [nativeBackend, wasmBackend, torchBackend] as Backend[]) {
  test(`${backend.name}: text.normEps reaches the text tower; unknown architecture fields are refused`, async (t) => {
    t.timeoutAfter(120_000);
    const status = backend.available('cpu');
    if (!status.ok) {
      t.skip(`${backend.name} backend unavailable: ${status.reason}`);
      return;
    }
    const model = await fixtureModel('xxlarge-tiny');
    const options = { precision: 'fp32', device: 'cpu', threads: 2 } as const;
    const tokens = new Int32Array(77);
    tokens.set([49406, 320, 1929, 539, 320, 2368, 49407]);
    const encode = async (arch: typeof model.arch) => {
      const loaded = await backend.load(arch, model.manifest, options);
      try {
        return (await loaded.encodeText(tokens, 1)).features;
      } finally {
        loaded.dispose();
      }
    };
    const base = await encode(model.arch);
    const same = await encode({ ...model.arch, text: { ...model.arch.text, normEps: 1e-5 } });
    const wide = await encode({ ...model.arch, text: { ...model.arch.text, normEps: 0.5 } });
    t.equal(maxRelativeDiff(same, base), 0, 'the default eps, given explicitly, gives the same features');
    const diff = maxRelativeDiff(wide, base);
    t.ok(diff > 1e-3, `eps 0.5 changes the text features (max rel diff ${diff.toPrecision(3)})`);
    const extra = { ...model.arch, vision: { ...model.arch.vision, layerScaleInit: 1e-6 } };
    await rejectsWith(t, backend.load(extra, model.manifest, options), 'E_INVALID_ARGUMENT', 'an architecture field the engine does not know', /unknown field "layerScaleInit"/);
  });
}
