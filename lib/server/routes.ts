/** The /v1 endpoints: text and image embeddings, zero-shot classification. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULT_TEMPLATES } from '../clip.js';
import { ClipError } from '../errors.js';
import { rank } from './classifiers.js';
import type { Engine } from './engine.js';
import { checkRequestText, imagesFromRequest, labelsOf, promptChars, templatesOf, textsFromBody } from './inputs.js';
import type { ServerMetrics } from './metrics.js';
import type { ResolvedServerOptions } from './options.js';
import type { Admission, RequestWork } from './work.js';

const MAX_TEMPLATES = 64;
const MAX_PROMPTS = 4096;

export interface RouteContext {
  engine: Engine;
  admission: Admission;
  metrics: ServerMetrics;
  options: ResolvedServerOptions;
}

function rowsOf(data: Float32Array, D: number): number[][] {
  return Array.from({ length: data.length / D }, (_, i) => Array.from(data.subarray(i * D, (i + 1) * D)));
}

function topOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) throw new ClipError('E_INVALID_ARGUMENT', 'top must be a positive integer');
  return n;
}

export function registerRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { engine, admission, options } = ctx;

  /** Admits the request (429 when full), runs it under its deadline, and gives the ticket back. */
  async function admitted<T>(request: FastifyRequest, reply: FastifyReply, fn: (work: RequestWork) => Promise<T>): Promise<T> {
    const work = admission.admit(options.timeoutMs);
    const onClose = () => {
      if (!reply.raw.writableFinished) work.abort(); // the client went away: drop its queued jobs
    };
    reply.raw.once('close', onClose);
    try {
      return await work.race(fn(work));
    } finally {
      reply.raw.off('close', onClose);
      work.finish();
    }
  }

  app.post('/v1/embeddings/text', (request, reply) =>
    admitted(request, reply, async (work) => {
      const texts = textsFromBody(request.body, options);
      return { embeddings: rowsOf(await engine.embedTexts(texts, work), engine.dim), dim: engine.dim };
    }),
  );

  app.post('/v1/embeddings/image', (request, reply) =>
    admitted(request, reply, async (work) => {
      const { images } = await imagesFromRequest(request, options.maxBodyBytes, options.maxItems, work.signal);
      const pixels = await engine.preprocess(images, work.signal);
      return { embeddings: rowsOf(await engine.embedPixels(pixels, images.length, work), engine.dim), dim: engine.dim };
    }),
  );

  app.post('/v1/classify', (request, reply) =>
    admitted(request, reply, async (work) => {
      const { images, json, fields } = await imagesFromRequest(request, options.maxBodyBytes, options.maxItems, work.signal);
      const labels = labelsOf(json, fields, options.maxItems, options.maxTextChars);
      const templates = templatesOf(json, fields, MAX_TEMPLATES, options.maxTextChars);
      const top = topOf(json ? json.top : fields?.get('top')?.[0]);
      if (labels.length * (templates?.length ?? 1) > MAX_PROMPTS) {
        throw new ClipError('E_INPUT_TOO_LARGE', `labels x templates must be at most ${MAX_PROMPTS} prompts`);
      }
      checkRequestText(promptChars(labels, templates ?? DEFAULT_TEMPLATES), 'the prompts (labels x templates)', options.maxRequestTextChars);
      const pixels = await engine.preprocess(images, work.signal);
      const { hit, classifier } = engine.classifier(labels, templates);
      ctx.metrics.classifierCache.inc({ result: hit ? 'hit' : 'miss' });
      const [zs, embeds] = await Promise.all([classifier, engine.embedPixels(pixels, images.length, work)]);
      const D = engine.dim;
      const results = Array.from({ length: images.length }, (_, i) => {
        const ranked = rank(embeds.subarray(i * D, (i + 1) * D), zs, engine.clip.logitScale);
        return top === undefined ? ranked : ranked.slice(0, top);
      });
      return { results };
    }),
  );
}
