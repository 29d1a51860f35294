/** Catalogue items: add (or replace) by image, change metadata, read, delete, page through. */
import { Router } from 'express';
import { z } from 'zod';
import { CatalogService, isObject, LIMITS } from '../../catalog/service';
import { badRequest } from '../../errors';
import { itemFormSchema, listQuerySchema, parse } from '../schemas';
import { jsonBody, parseBody, uploadedImage } from '../upload';

const duplicatesQuerySchema = z.object({ threshold: z.coerce.number().optional(), k: z.coerce.number().optional() }).strip();
// z.custom, not z.record: a record is rebuilt by assignment, which would turn a `__proto__` field into a prototype.
const patchSchema = z
  .object({ metadata: z.custom<Record<string, unknown>>(isObject, { error: 'must be a JSON object (a merge patch: a field set to null is removed)' }) })
  .strict();
const duplicateGroupsSchema = z
  .object({ threshold: z.number().optional(), cursor: z.string().max(64).optional(), limit: z.number().int().min(1).max(LIMITS.maxPageSize).optional() })
  .strict();

export function itemsRouter(service: CatalogService, maxUploadBytes: number): Router {
  const router = Router({ caseSensitive: true });

  router.post('/v1/items', parseBody(maxUploadBytes, { json: false }), async (req, res) => {
    const image = uploadedImage(req);
    if (!image) throw badRequest('EMPTY_BODY', 'the request carries no image (multipart field `image`)');
    const fields = parse(itemFormSchema, req.file ? req.body : req.query, 'BAD_ITEM');
    const { item, replaced } = await service.addItem({ id: fields.id, image, metadata: fields.metadata });
    res.status(replaced ? 200 : 201).location(`/v1/items/${encodeURIComponent(item.id)}`).json({ item, replaced });
  });

  router.get('/v1/items', async (req, res) => {
    res.json(await service.listItems(parse(listQuerySchema, req.query)));
  });

  router.get('/v1/items/:id', async (req, res) => {
    res.json({ item: await service.getItem(req.params.id, req.query.vector === 'true') });
  });

  router.get('/v1/items/:id/duplicates', async (req, res) => {
    const q = parse(duplicatesQuerySchema, req.query);
    res.json(await service.duplicatesOf(req.params.id, q.threshold ?? service.duplicateThreshold, q.k ?? LIMITS.defaultK));
  });

  router.post('/v1/duplicates', jsonBody(), async (req, res) => {
    const q = parse(duplicateGroupsSchema, req.body);
    res.json(await service.duplicateGroups({ threshold: q.threshold ?? service.duplicateThreshold, cursor: q.cursor, limit: q.limit }));
  });

  /** JSON `{metadata}`, a merge patch (RFC 7396): fields replace, null removes, objects merge. The image stays. */
  router.patch('/v1/items/:id', jsonBody(), async (req, res) => {
    const { metadata } = parse(patchSchema, req.body, 'BAD_ITEM');
    res.json({ item: await service.patchMetadata(req.params.id, metadata) });
  });

  router.delete('/v1/items/:id', async (req, res) => {
    await service.deleteItem(req.params.id);
    res.status(204).end();
  });

  return router;
}
