/**
 * HTTP status and JSON body for every failure: `{"error": {"code", "message"}}`. Library failures keep their
 * ClipError code; the server adds E_OVERLOADED (429, queue full),
 * E_UNAVAILABLE (503: draining, or a request timed out before its turn) and E_INTERNAL (500).
 */
import { ClipError, type ClipErrorCode } from '../errors.js';

export type ServerErrorCode = ClipErrorCode | 'E_OVERLOADED' | 'E_UNAVAILABLE' | 'E_INTERNAL';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ServerErrorCode,
    message: string,
    /** Seconds for a Retry-After header (429, 503). */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export interface ErrorBody {
  error: { code: string; message: string };
}

const CLIP_STATUS: Partial<Record<ClipErrorCode, number>> = {
  E_INVALID_ARGUMENT: 400,
  E_IMAGE_DECODE: 400,
  E_INPUT_TOO_LARGE: 413,
  E_TIMEOUT: 504,
  E_DISPOSED: 503,
};

/** Fastify's and @fastify/multipart's own errors carry a statusCode; 4xx ones are the client's fault. */
function fromFramework(err: { statusCode?: number; message?: string; code?: string }): HttpError | undefined {
  const status = err.statusCode;
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined;
  const message = err.message ?? 'bad request';
  if (status === 413 || err.code === 'FST_FILES_LIMIT' || err.code === 'FST_PARTS_LIMIT' || err.code === 'FST_FIELDS_LIMIT') {
    return new HttpError(413, 'E_INPUT_TOO_LARGE', message);
  }
  if (status === 404) return new HttpError(404, 'E_NOT_FOUND', message);
  return new HttpError(status === 415 ? 415 : 400, 'E_INVALID_ARGUMENT', message);
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ClipError) return new HttpError(CLIP_STATUS[err.code] ?? 500, err.code, err.message);
  const framework = typeof err === 'object' && err !== null ? fromFramework(err as { statusCode?: number }) : undefined;
  if (framework) return framework;
  return new HttpError(500, 'E_INTERNAL', err instanceof Error ? err.message : String(err));
}

export function errorBody(err: HttpError): ErrorBody {
  return { error: { code: err.code, message: err.message } };
}
