/** The OpenAPI 3.1 description of the HTTP API, served at /openapi.json. */
import { LIMITS } from '../catalog/service';
import { MAX_ANN_K, MAX_ANN_SAMPLE, MAX_EVAL_K, MAX_SAMPLE } from './routes/eval';

const error = { $ref: '#/components/schemas/Error' };
const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: error } } });
/** A required JSON request body: an object with these properties. */
const jsonBody = (required: string[], properties: Record<string, unknown>) => ({
  required: true,
  content: { 'application/json': { schema: { type: 'object', required, properties } } },
});
const imageBody = {
  'multipart/form-data': {
    schema: {
      type: 'object',
      required: ['image'],
      properties: {
        image: { type: 'string', format: 'binary', description: 'JPEG, PNG, WebP, GIF (first frame), AVIF or TIFF' },
        k: { type: 'integer', minimum: 1, maximum: LIMITS.maxK, default: LIMITS.defaultK },
        minScore: { type: 'number', minimum: -1, maximum: 1 },
        filter: { type: 'string', description: 'JSON object: metadata field → value, all must be equal' },
      },
    },
  },
  'image/*': { schema: { type: 'string', format: 'binary' } },
};

export function openApiDocument(dim: number): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: { title: 'Likeness', version: '1', description: 'Image similarity search: upload an image, get similar catalogue items.' },
    paths: {
      '/v1/search': {
        post: {
          summary: 'Find catalogue items similar to an image, a vector or a stored item',
          description: 'Scores are cosine similarities of unit-length embeddings (1 = identical). Searching by id includes the item itself.',
          requestBody: {
            required: true,
            content: {
              ...imageBody,
              'application/json': {
                schema: {
                  type: 'object',
                  properties: {
                    vector: { type: 'array', items: { type: 'number' }, minItems: dim, maxItems: dim },
                    id: { type: 'string' },
                    k: { type: 'integer', minimum: 1, maximum: LIMITS.maxK },
                    minScore: { type: 'number' },
                    filter: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] } },
                  },
                },
              },
            },
          },
          responses: {
            '200': { description: 'Results, best first', content: { 'application/json': { schema: { $ref: '#/components/schemas/SearchResult' } } } },
            '400': errorResponse('EMPTY_BODY, EMPTY_IMAGE, BAD_QUERY, BAD_VECTOR, BAD_K, BAD_MIN_SCORE, BAD_FILTER, BAD_JSON, BAD_MULTIPART'),
            '404': errorResponse('ITEM_NOT_FOUND'),
            '413': errorResponse('UPLOAD_TOO_LARGE, IMAGE_TOO_LARGE, BODY_TOO_LARGE'),
            '415': errorResponse('NOT_AN_IMAGE, UNSUPPORTED_FORMAT, UNSUPPORTED_CONTENT_TYPE'),
            '422': errorResponse('CORRUPT_IMAGE, DECODE_TIMEOUT'),
            '503': errorResponse('EMBED_QUEUE_FULL'),
          },
        },
      },
      '/v1/items': {
        post: {
          summary: 'Add an image to the catalogue (re-adding an id replaces it)',
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  required: ['image', 'id'],
                  properties: {
                    image: { type: 'string', format: 'binary' },
                    id: { type: 'string', maxLength: LIMITS.maxIdLength },
                    metadata: { type: 'string', description: `JSON object, at most ${LIMITS.maxMetadataBytes} bytes and ${LIMITS.maxMetadataDepth} levels deep, no NUL characters` },
                  },
                },
              },
              'image/*': { schema: { type: 'string', format: 'binary', description: 'the image itself, with id and metadata as query parameters' } },
            },
          },
          parameters: [
            { name: 'id', in: 'query', schema: { type: 'string', maxLength: LIMITS.maxIdLength }, description: 'with a raw image/* body' },
            { name: 'metadata', in: 'query', schema: { type: 'string' }, description: 'with a raw image/* body: a JSON object' },
          ],
          responses: {
            '201': { description: 'Added', content: { 'application/json': { schema: { $ref: '#/components/schemas/ItemResponse' } } } },
            '200': { description: 'Replaced an item with the same id', content: { 'application/json': { schema: { $ref: '#/components/schemas/ItemResponse' } } } },
            '400': errorResponse('EMPTY_BODY, EMPTY_IMAGE, BAD_ID, BAD_METADATA, BAD_ITEM, BAD_MULTIPART'),
            '413': errorResponse('UPLOAD_TOO_LARGE, IMAGE_TOO_LARGE'),
            '415': errorResponse('NOT_AN_IMAGE, UNSUPPORTED_FORMAT, UNSUPPORTED_CONTENT_TYPE'),
            '422': errorResponse('CORRUPT_IMAGE, DECODE_TIMEOUT'),
          },
        },
        get: {
          summary: 'Page through the catalogue',
          parameters: [
            { name: 'cursor', in: 'query', schema: { type: 'string' } },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: LIMITS.maxPageSize, default: LIMITS.defaultPageSize } },
          ],
          responses: { '200': { description: 'A page of items; `next` is the cursor of the following page' }, '400': errorResponse('BAD_LIMIT, BAD_CURSOR') },
        },
      },
      '/v1/items/{id}': {
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        get: {
          summary: 'One item',
          parameters: [{ name: 'vector', in: 'query', schema: { type: 'boolean' }, description: 'include the stored embedding' }],
          responses: { '200': { description: 'The item' }, '404': errorResponse('ITEM_NOT_FOUND') },
        },
        patch: {
          summary: "Change an item's (or an alias's) metadata; the image, its vector and its place in the listing stay",
          description: 'The metadata is a JSON Merge Patch (RFC 7396): given fields replace the stored ones, a field set to null is removed, nested objects merge.',
          requestBody: jsonBody(['metadata'], { metadata: { type: 'object', description: 'merge patch for the stored metadata' } }),
          responses: { '200': { description: '{item} as stored now' }, '400': errorResponse('BAD_METADATA, BAD_ITEM, BAD_JSON'), '404': errorResponse('ITEM_NOT_FOUND') },
        },
        delete: { summary: 'Delete an item', responses: { '204': { description: 'Deleted' }, '404': errorResponse('ITEM_NOT_FOUND') } },
      },
      '/v1/items/{id}/duplicates': {
        get: {
          summary: 'Near-duplicates of an item (similarity >= threshold) and items with identical bytes',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'threshold', in: 'query', description: "default: the model's duplicateThreshold (/healthz), else 0.95", schema: { type: 'number', exclusiveMinimum: 0, maximum: 1 } },
            { name: 'k', in: 'query', schema: { type: 'integer', minimum: 1, maximum: LIMITS.maxK, default: LIMITS.defaultK } },
          ],
          responses: { '200': { description: '{id, exact: [ids], near: [{id, score, metadata}]}' }, '400': errorResponse('BAD_THRESHOLD, BAD_K'), '404': errorResponse('ITEM_NOT_FOUND') },
        },
      },
      '/v1/items/{id}/thumbnail': {
        get: {
          summary: "The item's stored thumbnail (WebP, longest edge at most --thumbnail-size, never enlarged)",
          description:
            'Made when the item was stored. ETag is the sha256 of the item bytes; with `?v=<that sha256>` the answer may be cached for good (immutable), otherwise it is revalidated (If-None-Match → 304).',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'v', in: 'query', schema: { type: 'string' }, description: "the item's sha256, for a URL that may be cached forever" },
          ],
          responses: {
            '200': { description: 'the thumbnail', content: { 'image/webp': { schema: { type: 'string', format: 'binary' } } } },
            '304': { description: 'not modified (If-None-Match matched the ETag)' },
            '404': errorResponse('ITEM_NOT_FOUND, THUMBNAIL_NOT_FOUND (stored before thumbnails were kept, or thumbnails off)'),
          },
        },
      },
      '/v1/items/{id}/original': {
        get: {
          summary: "The item's original bytes, where the server keeps them (--keep-originals)",
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'v', in: 'query', schema: { type: 'string' }, description: "the item's sha256, for a URL that may be cached forever" },
          ],
          responses: {
            '200': { description: 'the bytes as uploaded, with their image content type', content: { 'image/*': { schema: { type: 'string', format: 'binary' } } } },
            '304': { description: 'not modified (If-None-Match matched the ETag)' },
            '404': errorResponse('ITEM_NOT_FOUND, ORIGINAL_NOT_KEPT'),
          },
        },
      },
      '/v1/duplicates': {
        post: {
          summary: 'Catalogue-wide near-duplicate groups, paged by anchor item; each group is reported once, at its oldest member',
          requestBody: {
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { threshold: { type: 'number', description: "default: the model's duplicateThreshold (/healthz), else 0.95" }, limit: { type: 'integer', maximum: LIMITS.maxPageSize }, cursor: { type: 'string' } },
                },
              },
            },
          },
          responses: { '200': { description: '{groups: [{ids, scores}], next}' }, '400': errorResponse('BAD_THRESHOLD, BAD_LIMIT, BAD_CURSOR') },
        },
      },
      '/v1/ingest': {
        post: {
          summary: 'Start an ingest job over a server-side folder, manifest (CSV/JSONL) or tar archive inside the allowed roots',
          requestBody: jsonBody(['source'], {
            source: { type: 'object', properties: { type: { enum: ['folder', 'manifest', 'tar'] }, path: { type: 'string' } } },
            duplicates: { enum: ['skip', 'keep', 'link'], description: 'exact duplicates of another id: skip (report), keep as a separate item, or link the id to the existing item (an alias: GET by that id returns the item with aliasOf; search hits list aliases)' },
          }),
          responses: {
            '202': { description: '{job}: poll /v1/jobs/{id}' },
            '400': errorResponse('BAD_INGEST, BAD_SOURCE, BAD_MANIFEST, BAD_ARCHIVE, SOURCE_NOT_FOUND'),
            '403': errorResponse('PATH_NOT_ALLOWED, SOURCE_UNREADABLE'),
          },
        },
      },
      '/v1/jobs': { get: { summary: 'Recent ingest jobs', responses: { '200': { description: '{jobs}' } } } },
      '/v1/jobs/{id}': {
        get: {
          summary: 'Job progress: total, done, added, unchanged, duplicates, failed, imagesPerSecond, etaSeconds',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: '{job}' }, '404': errorResponse('JOB_NOT_FOUND') },
        },
      },
      '/v1/jobs/{id}/cancel': {
        post: {
          summary: 'Stop a queued or running job; items stored so far stay, the rest are never read',
          parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
          responses: { '200': { description: "{job} with status 'cancelled'" }, '404': errorResponse('JOB_NOT_FOUND'), '409': errorResponse('JOB_FINISHED (done or failed)') },
        },
      },
      '/v1/jobs/{id}/failures': {
        get: {
          summary: 'Per-item report: failed items with error codes, skipped duplicates with the id they duplicate',
          parameters: [
            { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
            { name: 'cursor', in: 'query', schema: { type: 'string' } },
            { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 1000 } },
          ],
          responses: { '200': { description: '{items: [{seq, id, path, state, code, message, duplicateOf}], next}' }, '404': errorResponse('JOB_NOT_FOUND') },
        },
      },
      '/v1/eval': {
        post: {
          summary: 'Quality of the live catalogue: leave-one-out k-NN accuracy, recall@k, precision@k and mAP@k over items labelled by a metadata field',
          requestBody: jsonBody(['labelField'], {
            labelField: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'the metadata field holding the class' },
            sample: { type: 'integer', minimum: 1, maximum: MAX_SAMPLE, description: 'queries drawn from the labelled items' },
            k: { type: 'integer', minimum: 1, maximum: MAX_EVAL_K, default: 200 },
            temperature: { type: 'number', exclusiveMinimum: 0, maximum: 100, default: 0.1 },
            seed: { type: 'integer', minimum: 0, description: 'for the sample' },
          }),
          responses: { '200': { description: 'the report' }, '400': errorResponse('BAD_EVAL, BAD_K, BAD_LABEL_FIELD, NOT_ENOUGH_LABELS') },
        },
      },
      '/v1/eval/ann-recall': {
        get: {
          summary: "The HNSW index's recall@k against exact search for sampled items, with queries/s, per ef",
          parameters: [
            { name: 'sample', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_ANN_SAMPLE, default: 200 } },
            { name: 'k', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_ANN_K, default: 10 } },
            { name: 'ef', in: 'query', schema: { type: 'string', pattern: '^\\d{1,4}(,\\d{1,4}){0,15}$', default: '10,20,40,80,160,320' } },
          ],
          responses: { '200': { description: '{model, items, queries, k, sweep: [{ef, recall, queriesPerSecond}]}' }, '400': errorResponse('BAD_EVAL, BAD_K') },
        },
      },
      '/healthz': { get: { summary: 'Backend, model and item counts', responses: { '200': { description: 'Healthy' } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'Text exposition format' } } } },
      '/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' } } } },
    },
    // With --api-keys-file every route but /healthz and /openapi.json needs a key (read or write scope);
    // without it the server is open, hence the empty alternative.
    security: [{ apiKey: [] }, {}],
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'likeness keys create; 401 UNAUTHENTICATED, 403 FORBIDDEN_SCOPE, 429 RATE_LIMITED (Retry-After)' },
      },
      schemas: {
        Error: {
          type: 'object',
          properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' }, details: { type: 'object' } } } },
        },
        Item: {
          type: 'object',
          properties: { id: { type: 'string' }, metadata: { type: 'object' }, sha256: { type: 'string' }, model: { type: 'string' }, createdAt: { type: 'string' } },
        },
        ItemResponse: { type: 'object', properties: { item: { $ref: '#/components/schemas/Item' }, replaced: { type: 'boolean' } } },
        SearchResult: {
          type: 'object',
          properties: {
            results: {
              type: 'array',
              items: { type: 'object', properties: { id: { type: 'string' }, score: { type: 'number' }, metadata: { type: 'object' } } },
            },
            exactMatches: { type: 'array', items: { type: 'string' }, description: 'image queries: ids stored with identical bytes (under a filter, those whose metadata passes it)' },
            model: { type: 'string' },
            timing: { type: 'object', properties: { embedMs: { type: 'number' }, searchMs: { type: 'number' }, totalMs: { type: 'number' } } },
          },
        },
      },
    },
  };
}

/** A path item's operations; its other keys (`parameters`, `summary`, ...) are not methods. */
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

/**
 * The methods each described path answers, from the document itself (a test holds it equal to the
 * routes): what a 405 lists in its `Allow` header. Undefined for a path the API does not have.
 */
export function allowedMethods(dim: number): (path: string) => string[] | undefined {
  const paths = Object.entries(openApiDocument(dim).paths as Record<string, Record<string, unknown>>).map(([p, ops]) => {
    // One trailing slash allowed: Express routes '/v1/search/' as '/v1/search' (non-strict routing).
    const pattern = new RegExp(`^${p.replace(/[.]/g, '\\.').replace(/\{\w+\}/g, '[^/]+')}/?$`);
    const methods = Object.keys(ops).filter((k) => HTTP_METHODS.has(k)).map((m) => m.toUpperCase());
    // Express answers HEAD wherever it answers GET.
    return { pattern, methods: methods.includes('GET') ? [...methods, 'HEAD'] : methods };
  });
  return (path) => paths.find((p) => p.pattern.test(path))?.methods;
}
