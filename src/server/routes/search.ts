/** POST /v1/search: by uploaded image (multipart `image` or raw image/* body), or JSON {vector} / {id}. */
import { Request, Router } from 'express';
import type { CatalogService, SearchQuery } from '../../catalog/service';
import { badRequest } from '../../errors';
import { parse, searchFormSchema, searchJsonSchema } from '../schemas';
import { parseBody, uploadedImage } from '../upload';

function toQuery(req: Request): SearchQuery {
  const image = uploadedImage(req);
  if (image) {
    // Raw body: parameters in the query string; multipart: form fields, falling back to the query string.
    const params = parse(searchFormSchema, req.file ? { ...req.query, ...req.body } : req.query);
    return { image, ...params };
  }
  if (req.is('application/json')) return parse(searchJsonSchema, req.body, 'BAD_QUERY');
  throw badRequest('EMPTY_BODY', 'the request carries no image; send a multipart field `image`, an image/* body, or JSON {vector} or {id}');
}

export function searchRouter(service: CatalogService, maxUploadBytes: number): Router {
  const router = Router({ caseSensitive: true });
  router.post('/v1/search', parseBody(maxUploadBytes, { json: true }), async (req, res) => {
    res.json(await service.search(toQuery(req)));
  });
  return router;
}
