/**
 * The model behind the server: per-request inputs are tokenized or preprocessed first (bad input fails only
 * its own request), then queued as rows on the text or image tower of one BatchScheduler.
 */
import type { Clip, ZeroShotClassifier } from '../clip.js';
import { DEFAULT_TEMPLATES } from '../clip.js';
import { BatchScheduler, type SchedulerHooks } from './batcher.js';
import { ClassifierCache, classifierFrom, prompts } from './classifiers.js';
import type { RequestWork } from './work.js';

function concat<T extends Float32Array | Int32Array>(parts: T[], make: (n: number) => T): T {
  if (parts.length === 1) return parts[0];
  const out = make(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Rows [n * D] of a batch result, split back by each job's row count. */
function split(data: Float32Array, rows: number[], D: number): Float32Array[] {
  let offset = 0;
  return rows.map((n) => {
    const part = data.slice(offset * D, (offset + n) * D);
    offset += n;
    return part;
  });
}

export class Engine {
  readonly scheduler: BatchScheduler;
  readonly classifiers: ClassifierCache;

  constructor(
    readonly clip: Clip,
    private readonly options: { maxBatch: number; maxImageBatch: number; maxWaitMs: number; maxPixels: number; classifierCacheSize: number },
    hooks: SchedulerHooks,
  ) {
    const batchSize = options.maxBatch;
    const D = clip.embedDim;
    this.scheduler = new BatchScheduler(options.maxWaitMs, hooks);
    this.scheduler.addTower<Int32Array, Float32Array>('text', {
      maxBatch: batchSize,
      run: async (payloads, rows) => split((await clip.embedTexts(concat(payloads, (n) => new Int32Array(n)), { batchSize })).data, rows, D),
    });
    const imageBatch = options.maxImageBatch;
    this.scheduler.addTower<Float32Array, Float32Array>('image', {
      maxBatch: imageBatch,
      run: async (payloads, rows) => {
        const n = rows.reduce((a, b) => a + b, 0);
        return split((await clip.embedImages({ data: concat(payloads, (k) => new Float32Array(k)), n }, { batchSize: imageBatch })).data, rows, D);
      },
    });
    this.classifiers = new ClassifierCache(options.classifierCacheSize);
  }

  get dim(): number {
    return this.clip.embedDim;
  }

  /** Whether the model can still run (not disposed). */
  get alive(): boolean {
    try {
      return this.clip.backend !== undefined;
    } catch {
      return false;
    }
  }

  /** [texts.length * D] normalized rows. */
  embedTexts(texts: string[], work?: RequestWork): Promise<Float32Array> {
    const tokens = this.clip.tokenizer.tokenize(texts, this.clip.arch.text.contextLength);
    return this.scheduler.submit('text', tokens, texts.length, { signal: work?.signal, onStart: work?.markStarted });
  }

  /** Encoded images to [3, S, S] pixels each; throws the first bad image's ClipError (naming `input #i`). */
  preprocess(images: Uint8Array[]): Promise<Float32Array> {
    return this.clip.preprocessImages(images, { maxPixels: this.options.maxPixels });
  }

  /** [n * D] normalized rows of preprocessed pixels. */
  embedPixels(pixels: Float32Array, n: number, work?: RequestWork): Promise<Float32Array> {
    return this.scheduler.submit('image', pixels, n, { signal: work?.signal, onStart: work?.markStarted });
  }

  /** A cached zero-shot classifier, or one built from a batched text job (not tied to any one request). */
  classifier(labels: string[], templates: string[] = DEFAULT_TEMPLATES): { hit: boolean; classifier: Promise<ZeroShotClassifier> } {
    return this.classifiers.get(labels, templates, async () => {
      const embeds = await this.embedTexts(prompts(labels, templates));
      return classifierFrom(labels, templates.length, embeds, this.dim);
    });
  }
}
