// The README quick start, run against an installed convnext-clip with plain Node (no tsx, no repository code):
// copied into a fresh project by test/install.test.ts, run by the arm64 Node under qemu by test/arm64.test.ts.
// For each fixture model and precision: texts, images from files and from bytes, zero-shot and classify, checked
// against the reference fixtures. Prints one line `QUICKSTART {json}` per check and exits 1 on any failure.
//   QUICKSTART_MODULE   what to import (default: convnext-clip)
//   QUICKSTART_FIXTURES the fixtures folder (required)
//   QUICKSTART_MODELS   comma-separated fixture models (default: xxlarge-tiny,large-d-tiny)
//   QUICKSTART_BACKEND  backend to ask for (default: auto); QUICKSTART_PRECISIONS (default: "default,fp32")
import { readFileSync } from 'node:fs';
import path from 'node:path';

const { Clip } = await import(process.env.QUICKSTART_MODULE || 'convnext-clip');
const fixtures = process.env.QUICKSTART_FIXTURES;
if (!fixtures) throw new Error('QUICKSTART_FIXTURES is not set');
const models = (process.env.QUICKSTART_MODELS || 'xxlarge-tiny,large-d-tiny').split(',');
const backend = process.env.QUICKSTART_BACKEND || 'auto';
const precisions = (process.env.QUICKSTART_PRECISIONS || 'default,fp32').split(',');
const FP32_TOLERANCE = 1e-4;
const BF16_MIN_COSINE = 0.999;

/** The F32 tensors of a safetensors file (the fixtures' expected outputs). */
function readF32(file) {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const out = new Map();
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__' || entry.dtype !== 'F32') continue;
    const [begin, end] = entry.data_offsets;
    const copy = bytes.subarray(8 + headerLength + begin, 8 + headerLength + end);
    out.set(name, new Float32Array(copy.buffer.slice(copy.byteOffset, copy.byteOffset + copy.byteLength)));
  }
  return out;
}

function maxRelativeDiff(got, want) {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return got.length === want.length ? diff / scale : Infinity;
}

function minRowCosine(got, want, dim) {
  if (got.length !== want.length) return -Infinity;
  let worst = Infinity;
  for (let r = 0; r < want.length / dim; r++) {
    let dot = 0, a = 0, b = 0;
    for (let k = r * dim; k < (r + 1) * dim; k++) {
      dot += got[k] * want[k];
      a += got[k] * got[k];
      b += want[k] * want[k];
    }
    worst = Math.min(worst, dot / Math.sqrt(a * b));
  }
  return worst;
}

let failures = 0;
function report(check) {
  if (!check.ok) failures++;
  console.log(`QUICKSTART ${JSON.stringify(check)}`);
}

for (const name of models) {
  const dir = path.join(fixtures, 'models', name);
  const info = JSON.parse(readFileSync(path.join(dir, 'expected.json'), 'utf8'));
  const expected = readF32(path.join(dir, 'expected.safetensors'));
  const photos = info.images.filter((f) => !f.startsWith('<')).map((f) => path.join(fixtures, 'images', f));
  // the first half of the photos as files, the rest as encoded bytes
  const half = Math.ceil(photos.length / 2);
  const inputs = [...photos.slice(0, half), ...photos.slice(half).map((f) => readFileSync(f))];
  for (const precision of precisions) {
    const options = { backend, threads: 2, ...(precision === 'default' ? {} : { precision }) };
    const clip = await Clip.load(dir, options);
    try {
      const D = clip.embedDim;
      const texts = await clip.embedTexts(info.texts);
      const images = await clip.embedImages(inputs);
      const wantImages = expected.get('image_embeds').subarray(0, photos.length * D);
      const wantTexts = expected.get('text_embeds');
      const base = { model: name, backend: clip.backend, precision: clip.precision, asked: precision };
      if (clip.precision === 'bf16') {
        const cosine = Math.min(minRowCosine(images.data, wantImages, D), minRowCosine(texts.data, wantTexts, D));
        report({ ...base, check: 'embeddings', minCosine: cosine, ok: cosine >= BF16_MIN_COSINE });
      } else {
        const imageRel = maxRelativeDiff(images.data, wantImages);
        const textRel = maxRelativeDiff(texts.data, wantTexts);
        report({ ...base, check: 'embeddings', imageRel, textRel, ok: imageRel <= FP32_TOLERANCE && textRel <= FP32_TOLERANCE });
      }
      report({ ...base, check: 'backend selection', selection: clip.backendSelection, ok: clip.backendSelection.backend === clip.backend });
      const zsFile = path.join(dir, 'zeroshot_expected.json');
      if (name === 'xxlarge-tiny') {
        const zs = JSON.parse(readFileSync(zsFile, 'utf8'));
        const wantProbs = readF32(path.join(dir, 'zeroshot_expected.safetensors')).get('probs');
        const classifier = await clip.zeroShot(zs.classnames, zs.templates);
        const ranked = await clip.classify(inputs, classifier);
        const C = zs.classnames.length;
        let worst = 0;
        for (let i = 0; i < photos.length; i++) {
          for (const { label, score } of ranked[i]) {
            worst = Math.max(worst, Math.abs(score - wantProbs[i * C + zs.classnames.indexOf(label)]));
          }
        }
        const tolerance = clip.precision === 'bf16' ? 5e-3 : 1e-4;
        report({ ...base, check: 'zero-shot probabilities', maxAbsDiff: worst, ok: ranked.length === photos.length && worst <= tolerance });
      }
    } finally {
      clip.dispose();
    }
  }
}
console.log(`QUICKSTART-DONE ${failures} failed`);
process.exit(failures ? 1 : 0);
