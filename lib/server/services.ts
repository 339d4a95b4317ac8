/** The routes beside the native /v1 API: OpenAI- and TEI-compatible embeddings, and search over a collection. */
import type { FastifyInstance } from 'fastify';
import type { Collection } from '../search/collection.js';
import { registerOpenAiRoutes } from './openai.js';
import type { RouteContext } from './routes.js';
import { registerSearchRoutes } from './search-routes.js';
import { registerTeiRoutes } from './tei.js';

export interface ServerServices {
  /** The name /v1/embeddings and /info report (default: convnext-clip/<timm model name>). */
  modelId?: string;
  /** A photo collection to search: adds POST /v1/search, thumbnails and the search page at /. */
  collection?: Collection;
}

/** Paths whose requests count as work: refused while draining, waited for on shutdown. */
export function isWorkRoute(url: string): boolean {
  return url.startsWith('/v1/') || url === '/embed' || url.startsWith('/embed?');
}

export function registerServices(app: FastifyInstance, ctx: RouteContext, services: ServerServices, info: { version: string; draining: () => boolean }): void {
  const modelId = services.modelId ?? `convnext-clip/${ctx.engine.clip.arch.vision.timmModelName}`;
  registerOpenAiRoutes(app, ctx, modelId);
  registerTeiRoutes(app, ctx, { modelId, version: info.version, draining: info.draining });
  if (services.collection) registerSearchRoutes(app, ctx, services.collection);
}
