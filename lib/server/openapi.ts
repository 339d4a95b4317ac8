/** The OpenAPI 3.1 description served at GET /openapi.json. */

const error = {
  description: 'Error',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};

const errors = {
  '400': { ...error, description: 'Bad input: malformed JSON, wrong types, an image that cannot be decoded' },
  '413': { ...error, description: 'Body over max-body-bytes, an image over max-pixels, too many items' },
  '415': { ...error, description: 'Unsupported content type' },
  '429': { ...error, description: 'Queue full; retry after the Retry-After header' },
  '503': { ...error, description: 'Draining for shutdown, or timed out before its forward pass (Retry-After)' },
  '504': { ...error, description: 'Timed out during preprocessing or its forward pass' },
};

const embeddings = {
  description: 'L2-normalized embeddings, one row per input',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Embeddings' } } },
};

const base64Images = {
  type: 'object',
  required: ['images'],
  properties: { images: { type: 'array', minItems: 1, items: { type: 'string', contentEncoding: 'base64' } } },
};

const multipartImages = {
  type: 'object',
  properties: { file: { type: 'array', items: { type: 'string', format: 'binary' } } },
};

export function openApiDocument(info: { embedDim: number; version: string }): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'convnext-clip', version: info.version, description: `OpenCLIP ConvNeXt embeddings and zero-shot classification (embedding dimension ${info.embedDim}).` },
    paths: {
      '/v1/embeddings/text': {
        post: {
          summary: 'Embed texts',
          requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['texts'], properties: { texts: { type: 'array', minItems: 1, items: { type: 'string' } } } } } } },
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
              'application/json': { schema: base64Images },
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
            '200': { description: 'Per image, labels ranked by probability', content: { 'application/json': { schema: { $ref: '#/components/schemas/Classification' } } } },
            ...errors,
          },
        },
      },
      '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'The process is up' } } } },
      '/readyz': { get: { summary: 'Readiness: model loaded and not draining', responses: { '200': { description: 'Ready' }, '503': { description: 'Not ready' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text/plain exposition format' } } } },
    },
    components: {
      schemas: {
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
