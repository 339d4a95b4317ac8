/**
 * OpenAI-compatible `POST /v1/embeddings`: `{input, model?, encoding_format?, dimensions?}` answered as
 * `{object: 'list', data: [{object: 'embedding', index, embedding}], model, usage}`, errors as
 * `{error: {message, type, code, param}}`. An input string `data:image/<type>;base64,...` is embedded as an image.
 */
import type { FastifyInstance } from 'fastify';
import { ClipError } from '../errors.js';
import { admittedTimed, embedItems, embedMixed } from './embed-inputs.js';
import { type HttpError, toHttpError } from './errors.js';
import type { RouteContext } from './routes.js';

export interface OpenAiErrorBody {
  error: { message: string; type: string; code: string; param: string | null };
}

function errorType(status: number): string {
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export function openAiErrorBody(err: HttpError): OpenAiErrorBody {
  return { error: { message: err.message, type: errorType(err.status), code: err.code, param: null } };
}

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: 'base64'`. */
export function float32Base64(row: Float32Array): string {
  return Buffer.from(row.buffer, row.byteOffset, row.byteLength).toString('base64');
}

function bodyObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || Buffer.isBuffer(body)) throw new ClipError('E_INVALID_ARGUMENT', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

export function registerOpenAiRoutes(app: FastifyInstance, ctx: RouteContext, modelId: string): void {
  app.register(async (scope) => {
    scope.setErrorHandler((err, request, reply) => {
      const http = toHttpError(err);
      if (http.status >= 500 && http.status !== 503 && http.status !== 504) request.log.error(err);
      if (http.retryAfter !== undefined) reply.header('retry-after', String(http.retryAfter));
      return reply.code(http.status).send(openAiErrorBody(http));
    });

    scope.post('/v1/embeddings', (request, reply) =>
      admittedTimed(ctx, reply, async (work, timing) => {
        const body = bodyObject(request.body);
        const items = embedItems(body.input, 'input', ctx.options);
        const format = body.encoding_format ?? 'float';
        if (format !== 'float' && format !== 'base64') throw new ClipError('E_INVALID_ARGUMENT', "encoding_format must be 'float' or 'base64'");
        if (body.model !== undefined && typeof body.model !== 'string') throw new ClipError('E_INVALID_ARGUMENT', 'model must be a string');
        const D = ctx.engine.dim;
        if (body.dimensions !== undefined && body.dimensions !== D) {
          throw new ClipError('E_INVALID_ARGUMENT', `dimensions: this model's embeddings have ${D} dimensions (CLIP embeddings cannot be shortened)`);
        }
        const { rows, tokens } = await embedMixed(ctx.engine, items, work, timing);
        return {
          object: 'list',
          data: items.map((_, i) => {
            const row = rows.subarray(i * D, (i + 1) * D);
            return { object: 'embedding', index: i, embedding: format === 'base64' ? float32Base64(row) : Array.from(row) };
          }),
          model: modelId,
          usage: { prompt_tokens: tokens, total_tokens: tokens },
        };
      }),
    );
  });
}
