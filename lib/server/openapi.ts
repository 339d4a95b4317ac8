/** The OpenAPI 3.1 description served at GET /openapi.json. */

/** A JSON media type with this schema; a required JSON request body; a JSON response. */
const json = (schema: unknown) => ({ 'application/json': { schema } });
const jsonBody = (schema: unknown) => ({ required: true, content: json(schema) });
const jsonResponse = (description: string, schema: unknown) => ({ description, content: json(schema) });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

const error = jsonResponse('Error', ref('Error'));

const errors = {
  '400': { ...error, description: 'Bad input: malformed JSON, wrong types, an image that cannot be decoded' },
  '413': { ...error, description: 'Body over max-body-bytes, an image over max-pixels, too many items' },
  '415': { ...error, description: 'Unsupported content type' },
  '429': { ...error, description: 'Queue full; retry after the Retry-After header' },
  '503': { ...error, description: 'Draining for shutdown, or timed out before its forward pass (Retry-After)' },
  '504': { ...error, description: 'Timed out during preprocessing or its forward pass' },
};

const embeddings = jsonResponse('L2-normalized embeddings, one row per input', ref('Embeddings'));

const base64Images = {
  type: 'object',
  required: ['images'],
  properties: { images: { type: 'array', minItems: 1, items: { type: 'string', contentEncoding: 'base64' } } },
};

const multipartImages = {
  type: 'object',
  properties: { file: { type: 'array', items: { type: 'string', format: 'binary' } } },
};

const openAiError = jsonResponse("Error in OpenAI's shape", ref('OpenAiError'));

const teiError = jsonResponse("Error in text-embeddings-inference's shape", ref('TeiError'));

const stringOrStrings = (description: string) => ({
  oneOf: [{ type: 'string' }, { type: 'array', minItems: 1, items: { type: 'string' } }],
  description,
});

const INPUT_NOTE = 'texts; a string data:image/<type>;base64,... is embedded as an image (URLs are text, never fetched)';

/** OpenAI- and TEI-compatible routes, always served. */
function compatiblePaths(): Record<string, unknown> {
  const openAiErrors = Object.fromEntries(['400', '413', '429', '503', '504'].map((s) => [s, openAiError]));
  const teiErrors = Object.fromEntries(['400', '413', '429', '503', '504'].map((s) => [s, teiError]));
  return {
    '/v1/embeddings': {
      post: {
        summary: 'OpenAI-compatible embeddings (x-queue-time / x-inference-time headers in ms)',
        requestBody: jsonBody({
          type: 'object',
          required: ['input'],
          properties: {
            input: stringOrStrings(INPUT_NOTE),
            model: { type: 'string' },
            encoding_format: { enum: ['float', 'base64'], description: 'base64: little-endian float32 bytes' },
            dimensions: { type: 'integer', description: "must equal the model's embedding dimension" },
          },
        }),
        responses: { '200': jsonResponse("OpenAI's list of embeddings", ref('OpenAiEmbeddings')), ...openAiErrors },
      },
    },
    '/embed': {
      post: {
        summary: 'text-embeddings-inference-compatible embeddings',
        requestBody: jsonBody({
          type: 'object',
          required: ['inputs'],
          properties: {
            inputs: stringOrStrings(INPUT_NOTE),
            normalize: { const: true },
            truncate: { type: 'boolean', description: 'false: a text longer than the context is 413; default true' },
          },
        }),
        responses: { '200': jsonResponse('One embedding per input', { type: 'array', items: { type: 'array', items: { type: 'number' } } }), ...teiErrors },
      },
    },
    '/health': { get: { summary: 'TEI health: model loaded and not draining', responses: { '200': { description: 'Healthy' }, '503': teiError } } },
    '/info': { get: { summary: 'TEI model info (model_id, max_input_length, embed_dim, ...)', responses: { '200': jsonResponse('Model info', { type: 'object' }) } } },
  };
}

/** Search over a collection: served only with `serve --db`. */
function searchPaths(): Record<string, unknown> {
  const query = {
    type: 'object',
    properties: {
      query: { type: 'string', description: 'a text; give query or image' },
      image: { type: 'string', contentEncoding: 'base64', description: 'an image, base64 or a data URL' },
      top: { type: 'integer', minimum: 1 },
      exact: { type: 'boolean', description: 'bypass the ANN index' },
    },
  };
  return {
    '/v1/search': {
      post: {
        summary: 'Search the collection by text or by image (JSON, raw image bytes or multipart)',
        requestBody: {
          required: true,
          content: {
            ...json(query),
            'image/*': { schema: { type: 'string', format: 'binary' } },
            'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
            'multipart/form-data': { schema: { type: 'object', properties: { file: { type: 'string', format: 'binary' }, top: { type: 'integer' }, exact: { type: 'string' } } } },
          },
        },
        responses: { '200': jsonResponse('Ranked hits', ref('SearchResults')), ...errors },
      },
    },
    '/v1/search/thumbnails/{id}': {
      get: {
        summary: 'A WebP thumbnail of a file in the collection, by the id of a search result',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string', pattern: '^[0-9a-f]{16}$' } }],
        responses: { '200': { description: 'image/webp', content: { 'image/webp': { schema: { type: 'string', format: 'binary' } } } }, '400': error, '404': error },
      },
    },
    '/': { get: { summary: 'The search page (HTML)', responses: { '200': { description: 'text/html' } } } },
  };
}

const compatibleSchemas = {
  OpenAiEmbeddings: {
    type: 'object',
    required: ['object', 'data', 'model', 'usage'],
    properties: {
      object: { const: 'list' },
      data: {
        type: 'array',
        items: {
          type: 'object',
          properties: { object: { const: 'embedding' }, index: { type: 'integer' }, embedding: { oneOf: [{ type: 'array', items: { type: 'number' } }, { type: 'string', contentEncoding: 'base64' }] } },
        },
      },
      model: { type: 'string' },
      usage: { type: 'object', properties: { prompt_tokens: { type: 'integer' }, total_tokens: { type: 'integer' } } },
    },
  },
  OpenAiError: {
    type: 'object',
    required: ['error'],
    properties: { error: { type: 'object', required: ['message', 'type', 'code'], properties: { message: { type: 'string' }, type: { type: 'string' }, code: { type: 'string' }, param: { type: ['string', 'null'] } } } },
  },
  TeiError: { type: 'object', required: ['error', 'error_type'], properties: { error: { type: 'string' }, error_type: { type: 'string' } } },
  SearchResults: {
    type: 'object',
    properties: {
      results: {
        type: 'array',
        items: { type: 'object', properties: { id: { type: 'string' }, path: { type: 'string' }, score: { type: 'number' }, thumbnail: { type: 'string' } } },
      },
      count: { type: 'integer' },
    },
  },
};

/** `search`: whether the server has a collection (POST /v1/search, thumbnails and the page at /). */
export function openApiDocument(info: { embedDim: number; version: string; search?: boolean }): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'convnext-clip', version: info.version, description: `OpenCLIP ConvNeXt embeddings and zero-shot classification (embedding dimension ${info.embedDim}).` },
    paths: {
      '/v1/embeddings/text': {
        post: {
          summary: 'Embed texts',
          requestBody: jsonBody({ type: 'object', required: ['texts'], properties: { texts: { type: 'array', minItems: 1, items: { type: 'string' } } } }),
          responses: { '200': embeddings, ...errors },
        },
      },
      '/v1/embeddings/image': {
        post: {
          summary: 'Embed images: raw bytes (image/*), multipart files, or base64 in JSON',
          requestBody: {
            required: true,
            content: {
              'image/*': { schema: { type: 'string', format: 'binary' } },
              'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
              'multipart/form-data': { schema: multipartImages },
              ...json(base64Images),
            },
          },
          responses: { '200': embeddings, ...errors },
        },
      },
      '/v1/classify': {
        post: {
          summary: 'Zero-shot classification of images against labels (classifiers cached by labels + templates)',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['labels'],
                  properties: {
                    image: { type: 'string', contentEncoding: 'base64' },
                    images: base64Images.properties.images,
                    labels: { type: 'array', minItems: 1, items: { type: 'string' } },
                    templates: { type: 'array', minItems: 1, items: { type: 'string' }, description: "'{}' is replaced by the label; default ['a photo of a {}.']" },
                    top: { type: 'integer', minimum: 1 },
                  },
                },
              },
              'multipart/form-data': {
                schema: {
                  ...multipartImages,
                  properties: {
                    ...multipartImages.properties,
                    labels: { type: 'string', description: 'comma-separated, or a JSON array' },
                    templates: { type: 'string', description: 'one template per field, or a JSON array' },
                    top: { type: 'integer' },
                  },
                },
              },
            },
          },
          responses: {
            '200': jsonResponse('Per image, labels ranked by probability', ref('Classification')),
            ...errors,
          },
        },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'The process is up' } } } },
      '/readyz': { get: { summary: 'Readiness: model loaded and not draining', responses: { '200': { description: 'Ready' }, '503': { description: 'Not ready' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text/plain exposition format' } } } },
      ...compatiblePaths(),
      ...(info.search ? searchPaths() : {}),
    },
    components: {
      schemas: {
        ...compatibleSchemas,
        Embeddings: {
          type: 'object',
          required: ['embeddings', 'dim'],
          properties: { embeddings: { type: 'array', items: { type: 'array', items: { type: 'number' } } }, dim: { type: 'integer' } },
        },
        Classification: {
          type: 'object',
          properties: {
            results: {
              type: 'array',
              items: { type: 'array', items: { type: 'object', properties: { label: { type: 'string' }, score: { type: 'number' } } } },
            },
          },
        },
        Error: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } } },
        },
      },
    },
  };
}
