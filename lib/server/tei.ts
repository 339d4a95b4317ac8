/**
 * text-embeddings-inference-compatible routes: `POST /embed` (`{inputs, normalize?, truncate?}` answered with
 * `[[...], ...]`), `GET /health`, `GET /info`; errors as TEI's `{error, error_type}`. Inputs follow the OpenAI
 * route's rules (data:image URLs are images).
 */
import type { FastifyInstance } from 'fastify';
import { ClipError } from '../errors.js';
import { admittedTimed, embedItems, embedMixed } from './embed-inputs.js';
import { HttpError, toHttpError } from './errors.js';
import type { RouteContext } from './routes.js';

function errorType(status: number): string {
  if (status === 429) return 'Overloaded';
  if (status === 413) return 'Validation';
  if (status >= 500) return 'Unhealthy';
  return 'Validation';
}

export function registerTeiRoutes(app: FastifyInstance, ctx: RouteContext, info: { modelId: string; version: string; draining: () => boolean }): void {
  const { engine, options } = ctx;
  app.register(async (scope) => {
    scope.setErrorHandler((err, request, reply) => {
      const http = toHttpError(err);
      if (http.status >= 500 && http.status !== 503 && http.status !== 504) request.log.error(err);
      if (http.retryAfter !== undefined) reply.header('retry-after', String(http.retryAfter));
      return reply.code(http.status).send({ error: http.message, error_type: errorType(http.status) });
    });

    scope.post('/embed', (request, reply) =>
      admittedTimed(ctx, reply, async (work, timing) => {
        const body = request.body;
        if (typeof body !== 'object' || body === null || Array.isArray(body) || Buffer.isBuffer(body)) throw new ClipError('E_INVALID_ARGUMENT', 'the body must be a JSON object');
        const { inputs, normalize, truncate } = body as Record<string, unknown>;
        if (normalize !== undefined && normalize !== true) {
          throw new ClipError('E_INVALID_ARGUMENT', normalize === false ? 'normalize: false is not supported (this server returns L2-normalized CLIP embeddings)' : 'normalize must be a boolean');
        }
        if (truncate !== undefined && typeof truncate !== 'boolean') throw new ClipError('E_INVALID_ARGUMENT', 'truncate must be a boolean');
        const items = embedItems(inputs, 'inputs', options);
        if (truncate === false) {
          // one position past the context: a text that fills it does not fit
          const ctxLen = engine.clip.arch.text.contextLength;
          const at = items.flatMap((item, i) => (item.kind === 'text' ? [i] : []));
          const rows = await engine.clip.tokenizer.tokenizeAsync(at.map((i) => (items[i] as { text: string }).text), ctxLen + 1, { signal: work.signal });
          at.forEach((i, r) => {
            if (rows[r * (ctxLen + 1) + ctxLen] !== 0) throw new HttpError(413, 'E_INPUT_TOO_LARGE', `inputs[${i}] is longer than ${ctxLen} tokens and truncate is false`);
          });
        }
        const { rows } = await embedMixed(engine, items, work, timing);
        const D = engine.dim;
        return items.map((_, i) => Array.from(rows.subarray(i * D, (i + 1) * D)));
      }),
    );

    scope.get('/health', async (_request, reply) => {
      if (info.draining() || !engine.alive) throw new HttpError(503, 'E_UNAVAILABLE', info.draining() ? 'the server is shutting down' : 'the model is not loaded');
      return reply.code(200).send();
    });

    scope.get('/info', async () => ({
      model_id: info.modelId,
      model_sha: null,
      model_dtype: engine.clip.precision === 'bf16' ? 'bfloat16' : 'float32',
      model_type: { embedding: { pooling: 'clip' } },
      max_concurrent_requests: options.maxQueue,
      max_input_length: engine.clip.arch.text.contextLength,
      max_batch_tokens: options.maxBatch * engine.clip.arch.text.contextLength,
      max_batch_requests: null,
      max_client_batch_size: options.maxItems,
      auto_truncate: true,
      tokenization_workers: 1,
      version: info.version,
      sha: null,
      docker_label: null,
      embed_dim: engine.dim,
      backend: engine.clip.backend,
    }));
  });
}
