/**
 * Opens everything the serving flow needs from a Config: backend, embedder, catalogue, index.
 * Used by `likeness serve` and by the CLI commands that work on the catalogue files directly.
 */
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/config';
import { Embedder } from '../embed/embedder';
import { IndexStore } from '../index/index-store';
import { BackendInfo, initBackend } from '../runtime/backend';
import { CatalogEvaluator } from '../eval/catalog-eval';
import { IngestRunner } from '../ingest/runner';
import { ItemImages } from './item-images';
import { CatalogService } from './service';
import { SqliteImageStore } from './sqlite-images';
import { SqliteCatalog } from './sqlite-catalog';

export interface Likeness {
  config: Config;
  backend: BackendInfo;
  embedder: Embedder;
  catalog: SqliteCatalog;
  index: IndexStore;
  service: CatalogService;
  ingest: IngestRunner;
  evaluator: CatalogEvaluator;
  /** Stops ingest after its current chunk, snapshots the index and releases everything. */
  close(): Promise<void>;
}

export interface OpenHooks {
  onBatch?: (size: number, seconds: number) => void;
  /** Restart ingest jobs a crash or restart left unfinished (the server does; one-shot commands do not). */
  resumeJobs?: boolean;
}

export async function openLikeness(config: Config, log: Logger, hooks: OpenHooks = {}): Promise<Likeness> {
  const backend = await initBackend(config.backend);
  log.info({ backend: backend.name, provider: backend.provider, skipped: backend.skipped }, 'tfjs backend ready');
  const embedder = await Embedder.open({
    modelDir: config.model,
    workers: config.workers,
    backend: config.backend === 'auto' ? backend.name : config.backend,
    batching: { maxBatch: config.maxBatch, maxWaitMs: config.batchWaitMs, maxQueue: config.maxQueue },
    decode: { maxPixels: config.maxPixels, allowSvg: config.allowSvg, timeoutSeconds: config.decodeTimeoutSeconds },
    onBatch: hooks.onBatch,
  });
  log.info({ model: embedder.modelId, dim: embedder.dim, workers: config.workers }, 'model loaded');
  const catalog = new SqliteCatalog(path.join(config.dataDir, 'catalog.db'));
  let index: IndexStore;
  try {
    index = await IndexStore.open({
      dir: path.join(config.dataDir, 'index'),
      dim: embedder.dim,
      modelId: embedder.modelId,
      catalog,
      hnsw: { m: config.hnswM, efConstruction: config.hnswEfConstruction, efSearch: config.hnswEfSearch },
      snapshotEvery: config.snapshotEvery,
      log: (msg, fields) => log.info(fields ?? {}, msg),
    });
  } catch (err) {
    catalog.close();
    await embedder.close();
    throw err;
  }
  const images = new ItemImages(new SqliteImageStore(catalog.database), {
    thumbnailSize: config.thumbnailSize,
    keepOriginals: config.keepOriginals,
    limits: { maxPixels: config.maxPixels, allowSvg: config.allowSvg, timeoutSeconds: config.decodeTimeoutSeconds },
  });
  const service = new CatalogService(catalog, index, embedder, images);
  const ingest = new IngestRunner(service, catalog, { roots: config.ingestRoots, chunk: config.ingestChunk, log });
  if (hooks.resumeJobs) ingest.resumeUnfinished();
  return {
    config,
    backend,
    embedder,
    catalog,
    index,
    service,
    ingest,
    evaluator: new CatalogEvaluator(catalog, index, embedder.modelId, embedder.dim),
    async close() {
      await ingest.stop();
      await index.snapshot();
      await embedder.close();
      catalog.close();
    },
  };
}
