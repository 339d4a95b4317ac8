/**
 * The model behind the server: per-request inputs are tokenized or preprocessed first (bad input fails only
 * its own request), then queued as rows on the text or image tower of one BatchScheduler.
 */
import { availableParallelism } from 'node:os';
import type { Clip, ZeroShotClassifier } from '../clip.js';
import { DEFAULT_TEMPLATES } from '../clip.js';
import { ClipError } from '../errors.js';
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

/** Longest stretch of tokenizing between two turns of the event loop (/healthz must answer within 100 ms). */
const TOKENIZE_SLICE_MS = 5;
const PREPROCESS_CONCURRENCY = Math.min(4, availableParallelism());

/**
 * Clip.preprocessImages one image at a time on a few workers, checking `signal` before each: work nobody waits for
 * stops after the images already being decoded. Errors keep naming the request's own `input #i`.
 */
async function preprocessCancellable(images: Uint8Array[], clip: Clip, maxPixels: number, signal: AbortSignal): Promise<Float32Array> {
  const per = 3 * clip.preprocess.size * clip.preprocess.size;
  const out = new Float32Array(images.length * per);
  let next = 0;
  const failures: { index: number; error: unknown }[] = [];
  const worker = async (): Promise<void> => {
    while (failures.length === 0 && !signal.aborted && next < images.length) {
      const i = next++;
      try {
        out.set(await clip.preprocessImages([images[i]], { maxPixels, concurrency: 1 }), i * per);
      } catch (error) {
        failures.push({ index: i, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PREPROCESS_CONCURRENCY, images.length) }, worker));
  signal.throwIfAborted();
  if (failures.length > 0) {
    const { index, error } = failures.reduce((a, b) => (b.index < a.index ? b : a));
    if (!(error instanceof ClipError)) throw error;
    const message = error.message.replace(/^input #0\b/, `input #${index}`);
    throw new ClipError(error.code, message, { subject: error.subject === 'input #0' ? `input #${index}` : error.subject, cause: error });
  }
  return out;
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

  /** Token rows of texts, tokenized in slices that yield to the event loop; stops once `signal` aborts. */
  tokenize(texts: string[], signal?: AbortSignal): Promise<Int32Array> {
    return this.clip.tokenizer.tokenizeAsync(texts, this.clip.arch.text.contextLength, { signal, sliceMs: TOKENIZE_SLICE_MS });
  }

  /** [texts.length * D] normalized rows. */
  async embedTexts(texts: string[], work?: RequestWork): Promise<Float32Array> {
    const tokens = await this.tokenize(texts, work?.signal);
    return this.scheduler.submit('text', tokens, texts.length, { signal: work?.signal, onStart: work?.markStarted });
  }

  /**
   * Encoded images to [3, S, S] pixels each, by the model's own preprocessing; throws the first bad image's
   * ClipError (naming `input #i`). Once `signal` aborts no further image is started (those being decoded
   * finish) and it rejects with signal.reason.
   */
  async preprocess(images: Uint8Array[], signal?: AbortSignal): Promise<Float32Array> {
    if (!signal) return this.clip.preprocessImages(images, { maxPixels: this.options.maxPixels });
    return preprocessCancellable(images, this.clip, this.options.maxPixels, signal);
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
