/**
 * What the OpenAI- and TEI-compatible routes share: their `input` lists (texts, and images as
 * `data:image/...;base64,` strings; URLs are text, never fetched), admission with queue/inference timing, and
 * one embedding pass over a mixed list through the server's batch scheduler.
 */
import type { FastifyReply } from 'fastify';
import { ClipError } from '../errors.js';
import type { Engine } from './engine.js';
import { HttpError } from './errors.js';
import { type TextLimits, checkRequestText, checkTextLength, decodeBase64 } from './inputs.js';
import type { RouteContext } from './routes.js';
import type { RequestWork } from './work.js';

export type EmbedItem = { kind: 'text'; text: string } | { kind: 'image'; bytes: Buffer };

const IMAGE_DATA_URL = /^data:image\/[\w.+-]+;base64,/i;

function invalid(message: string): ClipError {
  return new ClipError('E_INVALID_ARGUMENT', message);
}

/** `input` (or TEI's `inputs`): a string or a non-empty array of strings; data:image URLs are images. */
export function embedItems(value: unknown, name: string, limits: TextLimits): EmbedItem[] {
  const { maxItems } = limits;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list)) throw invalid(`${name} must be a string or an array of strings`);
  if (list.length === 0) throw invalid(`${name} must not be empty`);
  if (list.length > maxItems) throw new HttpError(413, 'E_INPUT_TOO_LARGE', `${name}: ${list.length} items, more than the limit of ${maxItems} per request`);
  let chars = 0;
  const items = list.map((v, i): EmbedItem => {
    const label = typeof value === 'string' ? name : `${name}[${i}]`;
    if (typeof v === 'number' || (Array.isArray(v) && v.every((x) => typeof x === 'number'))) {
      throw invalid(`${label}: token-id inputs are not supported; send strings`);
    }
    if (typeof v !== 'string') throw invalid(`${label} must be a string, got ${v === null ? 'null' : typeof v}`);
    if (IMAGE_DATA_URL.test(v)) return { kind: 'image', bytes: decodeBase64(v, label) };
    if (v.startsWith('data:')) throw invalid(`${label}: only data:image/<type>;base64, data URLs are images`);
    chars += checkTextLength(v, label, limits.maxTextChars).length;
    return { kind: 'text', text: v };
  });
  checkRequestText(chars, name, limits.maxRequestTextChars);
  return items;
}

/** Milliseconds a request waited for its first forward pass, and spent from then to its last result. */
export class Timing {
  private readonly admittedAt = performance.now();
  private startedAt: number | undefined;
  private finishedAt: number | undefined;

  readonly onStart = (): void => {
    this.startedAt ??= performance.now();
  };

  finish(): void {
    this.finishedAt = performance.now();
  }

  /** TEI's header names (integer milliseconds); also set on the OpenAI route. */
  setHeaders(reply: FastifyReply): void {
    const end = this.finishedAt ?? performance.now();
    const start = this.startedAt ?? end;
    reply.header('x-queue-time', String(Math.round(start - this.admittedAt)));
    reply.header('x-inference-time', String(Math.round(end - start)));
    reply.header('x-total-time', String(Math.round(end - this.admittedAt)));
  }
}

/** Admits the request (429 when full), runs `fn` under its deadline, drops its jobs if the client leaves. */
export async function admittedTimed<T>(ctx: RouteContext, reply: FastifyReply, fn: (work: RequestWork, timing: Timing) => Promise<T>): Promise<T> {
  const work = ctx.admission.admit(ctx.options.timeoutMs);
  const timing = new Timing();
  const onClose = () => {
    if (!reply.raw.writableFinished) work.abort();
  };
  reply.raw.once('close', onClose);
  try {
    const result = await work.race(fn(work, timing));
    timing.finish();
    timing.setHeaders(reply);
    return result;
  } finally {
    reply.raw.off('close', onClose);
    work.finish();
  }
}

/** Tokens in each row of [n, ctx] token ids, start and end tokens included (the end token is the largest id). */
export function tokenCounts(tokens: Int32Array, ctx: number): number[] {
  return Array.from({ length: tokens.length / ctx }, (_, r) => {
    let best = 0;
    for (let i = 1; i < ctx; i++) if (tokens[r * ctx + i] > tokens[r * ctx + best]) best = i;
    return best + 1;
  });
}

/**
 * [items.length * D] L2-normalized rows in input order, and the text inputs' token count; texts and images run
 * on their towers concurrently. Tokenizing and decoding yield to the event loop and stop if the request aborts.
 */
export async function embedMixed(engine: Engine, items: EmbedItem[], work: RequestWork, timing: Timing): Promise<{ rows: Float32Array; tokens: number }> {
  const D = engine.dim;
  const out = new Float32Array(items.length * D);
  const onStart = () => {
    timing.onStart();
    work.markStarted();
  };
  const textAt: number[] = [];
  const imageAt: number[] = [];
  items.forEach((item, i) => (item.kind === 'text' ? textAt : imageAt).push(i));
  const place = (rows: Float32Array, at: number[]) => at.forEach((pos, r) => out.set(rows.subarray(r * D, (r + 1) * D), pos * D));
  const jobs: Promise<void>[] = [];
  let tokenTotal = 0;
  if (textAt.length > 0) {
    const texts = textAt.map((i) => (items[i] as { text: string }).text);
    jobs.push(
      engine
        .tokenize(texts, work.signal)
        .then((tokens) => {
          tokenTotal = tokenCounts(tokens, engine.clip.arch.text.contextLength).reduce((a, b) => a + b, 0);
          return engine.scheduler.submit<Int32Array, Float32Array>('text', tokens, texts.length, { signal: work.signal, onStart });
        })
        .then((rows) => place(rows, textAt)),
    );
  }
  if (imageAt.length > 0) {
    const images = imageAt.map((i) => (items[i] as { bytes: Buffer }).bytes);
    jobs.push(
      engine
        .preprocess(images, work.signal)
        .then((pixels) => engine.scheduler.submit<Float32Array, Float32Array>('image', pixels, images.length, { signal: work.signal, onStart }))
        .then((rows) => place(rows, imageAt)),
    );
  }
  await Promise.all(jobs);
  return { rows: out, tokens: tokenTotal };
}
