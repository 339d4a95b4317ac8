/**
 * An HTTP server over a loaded Clip (fastify): batched embeddings and zero-shot classification, health,
 * readiness, Prometheus metrics, OpenAPI. Usable as a library:
 *
 *   const app = await createServer(clip, { maxBatch: 32, maxWaitMs: 5 });
 *   await app.listen({ host: '127.0.0.1', port: 8080 });
 *   ...
 *   await app.shutdown();   // refuse new work (503), finish accepted requests, close
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance } from 'fastify';
import { findPackageRoot } from '../backends/package-root.js';
import type { Clip } from '../clip.js';
import { Engine } from './engine.js';
import { HttpError, errorBody, toHttpError } from './errors.js';
import { ServerMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { type ServerOptions, resolveServerOptions } from './options.js';
import { registerRoutes } from './routes.js';
import { type ServerServices, isWorkRoute, registerServices } from './services.js';
import { Admission } from './work.js';
import { invalid, optionsObject } from '../validate.js';

export { HttpError, type ServerErrorCode } from './errors.js';
export { SERVER_DEFAULTS, type ServerOptions } from './options.js';
export type { ServerServices } from './services.js';

export interface ShutdownOptions {
  /** Longest wait for accepted requests before closing anyway (default 30000 ms). */
  graceMs?: number;
}

export type ClipServer = FastifyInstance & {
  /** Refuses new /v1 work with 503, waits for accepted requests, then closes the server. */
  shutdown(options?: ShutdownOptions): Promise<void>;
  readonly draining: boolean;
  /** Requests being handled now (accepted, not yet answered). */
  readonly inFlight: number;
};

function packageVersion(): string {
  try {
    const root = findPackageRoot();
    return root ? (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export async function createServer(clip: Clip, serverOptions: ServerOptions = {}, services: ServerServices = {}): Promise<ClipServer> {
  if (typeof (clip as Partial<Clip> | null)?.embedImages !== 'function') throw invalid('a loaded Clip (from Clip.load)', 'clip', clip);
  optionsObject(serverOptions, 'serverOptions');
  optionsObject(services, 'services');
  const options = resolveServerOptions(serverOptions);
  const app = Fastify({
    logger: options.logger,
    bodyLimit: options.maxBodyBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Slow clients are cut off: headers, the whole request (408), silence, and idle keep-alive connections.
    http: { headersTimeout: options.headersTimeoutMs, requestTimeout: options.bodyTimeoutMs, connectionsCheckingInterval: Math.min(1000, options.headersTimeoutMs) },
    requestTimeout: options.bodyTimeoutMs,
    connectionTimeout: options.idleTimeoutMs,
    keepAliveTimeout: options.keepAliveTimeoutMs,
  });
  let draining = false;
  let inFlight = 0;
  let idle: (() => void)[] = [];

  const admission = new Admission(options.maxQueue, options.retryAfterSeconds);
  const metrics = new ServerMetrics({
    queueDepth: () => ({ text: engine.scheduler.queued('text'), image: engine.scheduler.queued('image') }),
    pending: () => admission.pending,
    inFlight: () => inFlight,
  });
  const engine = new Engine(clip, options, {
    onBatch: (stats) => metrics.onBatch(stats),
    onForward: (tower, seconds, ok) => metrics.forward.observe({ tower, outcome: ok ? 'ok' : 'error' }, seconds),
  });

  await app.register(multipart, { limits: { fileSize: options.maxBodyBytes, files: options.maxItems } });
  const raw = (_req: unknown, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => done(null, body);
  app.addContentTypeParser(/^image\/[\w.+-]+\s*(;.*)?$/, { parseAs: 'buffer', bodyLimit: options.maxBodyBytes }, raw);
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: options.maxBodyBytes }, raw);

  // Work routes: refused while draining; accepted ones are counted until their response is closed.
  app.addHook('onRequest', async (request, reply) => {
    if (!isWorkRoute(request.url)) return;
    if (draining) {
      reply.header('connection', 'close');
      throw new HttpError(503, 'E_UNAVAILABLE', 'the server is shutting down', options.retryAfterSeconds);
    }
    inFlight++;
    reply.raw.once('close', () => {
      inFlight--;
      if (inFlight === 0) for (const resolve of idle.splice(0)) resolve();
    });
  });
  // While draining, every answer closes its connection, and connections left idle are closed at once.
  app.addHook('onSend', async (_request, reply) => {
    if (draining) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (request, reply) => {
    if (draining) app.server.closeIdleConnections();
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.latency.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err, request, reply) => {
    const http = toHttpError(err);
    if (http.status >= 500 && http.status !== 503 && http.status !== 504) request.log.error(err);
    if (http.retryAfter !== undefined) reply.header('retry-after', String(http.retryAfter));
    return reply.code(http.status).send(errorBody(http));
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).send(errorBody(new HttpError(404, 'E_NOT_FOUND', `no route ${request.method} ${request.url}`))));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const ready = !draining && engine.alive;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : draining ? 'draining' : 'not loaded' });
  });
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  const openapi = openApiDocument({ embedDim: clip.embedDim, version: packageVersion(), search: services.collection !== undefined });
  app.get('/openapi.json', async () => openapi);

  registerRoutes(app, { engine, admission, metrics, options });
  registerServices(app, { engine, admission, metrics, options }, services, { version: packageVersion(), draining: () => draining });

  const waitIdle = (graceMs: number) =>
    new Promise<void>((resolve) => {
      if (inFlight === 0) return resolve();
      const timer = setTimeout(resolve, graceMs);
      idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });

  /** Closes the server; connections still open after the grace period (requests not done in time) are cut. */
  const closeNow = async () => {
    const closed = app.close();
    app.server.closeAllConnections();
    await closed;
    // A forward pass cannot be interrupted: let it end before the caller disposes the model.
    while (engine.scheduler.running) await new Promise((r) => setTimeout(r, 10));
  };
  let closing: Promise<void> | undefined;
  const shutdown = (shutdownOptions: ShutdownOptions = {}) => {
    draining = true;
    app.server.closeIdleConnections();
    closing ??= waitIdle(shutdownOptions.graceMs ?? 30_000).then(closeNow);
    return closing;
  };
  app.addHook('onClose', async () => {
    draining = true;
    idle = [];
  });
  app.decorate('shutdown', shutdown);
  app.decorate('draining', { getter: () => draining });
  app.decorate('inFlight', { getter: () => inFlight });
  return app as unknown as ClipServer;
}
