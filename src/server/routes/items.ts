/** Catalogue items: add (or replace) by image, read, delete, page through. */
import { Router } from 'express';
import type { CatalogService } from '../../catalog/service';
import { badRequest } from '../../errors';
import { itemFormSchema, listQuerySchema, parse } from '../schemas';
import { parseBody, uploadedImage } from '../upload';

export function itemsRouter(service: CatalogService, maxUploadBytes: number): Router {
  const router = Router();

  router.post('/v1/items', parseBody(maxUploadBytes, { json: false }), async (req, res) => {
    const image = uploadedImage(req);
    if (!image) throw badRequest('EMPTY_BODY', 'the request carries no image (multipart field `image`)');
    const fields = parse(itemFormSchema, req.file ? req.body : req.query, 'BAD_ITEM');
    const { item, replaced } = await service.addItem({ id: fields.id, image, metadata: fields.metadata });
    res.status(replaced ? 200 : 201).json({ item, replaced });
  });

  router.get('/v1/items', (req, res) => {
    res.json(service.listItems(parse(listQuerySchema, req.query)));
  });

  router.get('/v1/items/:id', (req, res) => {
    res.json({ item: service.getItem(req.params.id, req.query.vector === 'true') });
  });

  router.delete('/v1/items/:id', (req, res) => {
    service.deleteItem(req.params.id);
    res.status(204).end();
  });

  return router;
}
