/** An item's stored images: GET /v1/items/:id/thumbnail, GET /v1/items/:id/original */
import { Request, Response, Router } from 'express';
import type { CatalogService } from '../../catalog/service';
import type { ImageKind } from '../../catalog/item-images';

/**
 * Images are named by the sha256 of the item's bytes. A URL carrying `?v=<that sha256>` can never
 * show other bytes, so browsers may keep it for good; without it they revalidate (ETag → 304), since
 * the id may be re-stored with another image.
 */
async function sendImage(req: Request, res: Response, service: CatalogService, kind: ImageKind): Promise<void> {
  const { sha256, image } = await service.itemImage(String(req.params.id), kind);
  res.set('ETag', `"${sha256}${kind === 'thumbnail' ? '-thumb' : ''}"`);
  res.set('Cache-Control', req.query.v === sha256 ? 'public, max-age=31536000, immutable' : 'no-cache');
  // A kept original may be an SVG (--allow-svg): never let it run script on this origin.
  if (kind === 'original') res.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; sandbox");
  if (req.fresh) {
    res.status(304).end();
    return;
  }
  res.type(image.type).send(image.bytes);
}

export function imagesRouter(service: CatalogService): Router {
  const router = Router({ caseSensitive: true });
  router.get('/v1/items/:id/thumbnail', (req, res) => sendImage(req, res, service, 'thumbnail'));
  router.get('/v1/items/:id/original', (req, res) => sendImage(req, res, service, 'original'));
  return router;
}
