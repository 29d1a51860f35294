/** /healthz, /metrics, /openapi.json */
import { Router } from 'express';
import type { Likeness } from '../../catalog/open';
import type { Metrics } from '../metrics';
import { openApiDocument } from '../openapi';

export function systemRouter(app: Likeness, metrics: Metrics): Router {
  const router = Router({ caseSensitive: true });

  router.get('/healthz', async (_req, res) => {
    const stats = await app.service.stats();
    res.json({
      status: 'ok',
      backend: app.backend.name,
      backendProvider: app.backend.provider,
      // who runs the wasm backend's convolutions ('oneDNN 2.6.3', with ', bf16 inputs' under
      // --conv-kernels onednn-bf16, or 'wasm'); absent on other backends
      convolutions: app.backend.convolutions,
      store: app.store.kind,
      model: { id: app.embedder.modelId, name: app.embedder.manifest.name, dim: app.embedder.dim, input: app.embedder.manifest.input, duplicateThreshold: app.service.duplicateThreshold },
      items: stats.items,
      aliases: stats.aliases,
      searchable: stats.searchable,
      indexed: stats.indexed,
      embedQueue: app.embedder.load,
    });
  });

  router.get('/metrics', async (_req, res) => {
    const stats = await app.service.stats();
    metrics.indexSize.set(stats.indexed);
    metrics.catalogItems.set(stats.items);
    metrics.embedQueue.set(app.embedder.load);
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  router.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument(app.embedder.dim));
  });

  return router;
}
