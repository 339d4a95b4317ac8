/**
 * Search over a collection when the server has one (`serve --db`): `POST /v1/search` by text or image, thumbnails
 * of the collection's files by row id (never by a client-supplied path), and the search page at `/`.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import { ClipError } from '../errors.js';
import type { Collection } from '../search/collection.js';
import { MAX_TOP } from '../search/collection.js';
import { ID_PATTERN } from '../search/store.js';
import { type EmbedItem, admittedTimed, embedMixed } from './embed-inputs.js';
import { HttpError } from './errors.js';
import { checkTextLength, decodeBase64, imagesFromRequest } from './inputs.js';
import { SEARCH_PAGE } from './page/search-page.js';
import type { RouteContext } from './routes.js';

export const THUMBNAIL_SIZE = 256;

function invalid(message: string): ClipError {
  return new ClipError('E_INVALID_ARGUMENT', message);
}

function topOf(value: unknown): number {
  if (value === undefined) return 12;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_TOP) throw invalid(`top must be an integer in 1..${MAX_TOP}`);
  return n;
}

/** The query of a search request: JSON `{query}` or `{image}` (base64 or data URL), raw image bytes, or multipart. */
async function queryOf(request: Parameters<typeof imagesFromRequest>[0], ctx: RouteContext): Promise<{ item: EmbedItem; top: number; exact: boolean }> {
  const body = request.body;
  if (!Buffer.isBuffer(body) && !request.isMultipart()) {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the body must be a JSON object: {"query": "..."} or {"image": "<base64>"}');
    const json = body as Record<string, unknown>;
    const exact = json.exact === true;
    if (json.exact !== undefined && typeof json.exact !== 'boolean') throw invalid('exact must be a boolean');
    if ((json.query === undefined) === (json.image === undefined)) throw invalid('give either query (a text) or image (base64)');
    if (json.query !== undefined) {
      if (typeof json.query !== 'string' || json.query.trim().length === 0) throw invalid('query must be a non-empty string');
      checkTextLength(json.query, 'query', ctx.options.maxTextChars);
      return { item: { kind: 'text', text: json.query }, top: topOf(json.top), exact };
    }
    if (typeof json.image !== 'string') throw invalid('image must be a base64 string');
    return { item: { kind: 'image', bytes: decodeBase64(json.image, 'image') }, top: topOf(json.top), exact };
  }
  const { images, fields } = await imagesFromRequest(request, ctx.options.maxBodyBytes, 1);
  const query = request.query as Record<string, unknown>;
  return { item: { kind: 'image', bytes: images[0] }, top: topOf(fields?.get('top')?.[0] ?? query.top), exact: (fields?.get('exact')?.[0] ?? query.exact) === 'true' };
}

export function registerSearchRoutes(app: FastifyInstance, ctx: RouteContext, collection: Collection): void {
  const cacheDir = path.join(collection.dir, '.thumbnails');
  const making = new Map<string, Promise<Buffer>>();

  app.post('/v1/search', (request, reply) =>
    admittedTimed(ctx, reply, async (work, timing) => {
      const { item, top, exact } = await queryOf(request, ctx);
      const { rows: vector } = await embedMixed(ctx.engine, [item], work, timing);
      const hits = await collection.store.search(vector, { top, exact });
      return {
        results: hits.map((h) => ({ id: h.id, path: path.relative(h.root, h.path).split(path.sep).join('/'), score: h.score, thumbnail: `/v1/search/thumbnails/${h.id}` })),
        count: await collection.count(),
      };
    }),
  );

  app.get<{ Params: { id: string } }>('/v1/search/thumbnails/:id', async (request, reply) => {
    const id = request.params.id;
    if (!ID_PATTERN.test(id)) throw invalid('a thumbnail is named by the 16-hex-digit id of a search result');
    // 404 unless the row exists and its file is still a regular file inside the folder it was indexed from
    const { info, file } = await collection.fileOf(id).catch((err) => {
      throw err instanceof ClipError && err.code === 'E_NOT_FOUND' ? new HttpError(404, 'E_NOT_FOUND', err.message) : err;
    });
    const key = `${id}-${info.hash.slice(0, 16)}-${THUMBNAIL_SIZE}`;
    const cached = path.join(cacheDir, `${key}.webp`);
    let bytes: Buffer | undefined = await readFile(cached).catch(() => undefined);
    if (!bytes) {
      let job = making.get(key);
      if (!job) {
        job = (async () => {
          const input = await readFile(file);
          const out = await sharp(input, { limitInputPixels: ctx.options.maxPixels }).rotate().resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: 'cover' }).webp({ quality: 80 }).toBuffer();
          await mkdir(cacheDir, { recursive: true });
          const tmp = `${cached}.${process.pid}.tmp`;
          await writeFile(tmp, out);
          await rename(tmp, cached);
          return out;
        })().finally(() => making.delete(key));
        making.set(key, job);
      }
      try {
        bytes = await job;
      } catch (err) {
        if (err instanceof ClipError) throw err;
        throw new ClipError('E_IMAGE_DECODE', `image ${id} cannot be thumbnailed: ${(err as Error).message}`);
      }
    }
    return reply.type('image/webp').header('cache-control', 'private, max-age=3600').send(bytes);
  });

  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').send(SEARCH_PAGE));
}
