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
import { DataDirLock } from './data-dir-lock';
import { ItemImages } from './item-images';
import { PostgresStore } from './postgres/pg-store';
import { CatalogService } from './service';
import { SqliteCatalog } from './sqlite-catalog';
import { SqliteStore } from './sqlite-store';
import type { Store } from './store';

export interface Likeness {
  config: Config;
  backend: BackendInfo;
  embedder: Embedder;
  store: Store;
  /** The embedded store's parts (SQLite catalogue, hnswlib index, the data dir's lock); absent on PostgreSQL. */
  embedded?: { catalog: SqliteCatalog; index: IndexStore; lock?: DataDirLock };
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

/** How often a replica on a shared database looks for jobs to help with (or to take over). */
const SHARED_JOB_POLL_MS = 2000;

/** The embedded store's SQLite file under a data dir. */
export const catalogFile = (dataDir: string): string => path.join(dataDir, 'catalog.db');

async function openEmbedded(config: Config, log: Logger, dim: number, modelId: string): Promise<SqliteStore> {
  const lock = DataDirLock.acquire(config.dataDir);
  let catalog: SqliteCatalog;
  try {
    catalog = new SqliteCatalog(catalogFile(config.dataDir));
  } catch (err) {
    lock.release();
    const code = (err as { code?: string }).code;
    // better-sqlite3's own words ("file is not a database") name neither the file nor a way out.
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
      throw new Error(`${catalogFile(config.dataDir)} is damaged (${(err as Error).message}): restore it from a backup (README, "How it stores data"), or index the images again into an empty --data-dir`);
    }
    throw err;
  }
  try {
    const index = await IndexStore.open({
      dir: path.join(config.dataDir, 'index'),
      dim,
      modelId,
      catalog,
      hnsw: { m: config.hnswM, efConstruction: config.hnswEfConstruction, efSearch: config.hnswEfSearch },
      snapshotEvery: config.snapshotEvery,
      log: (msg, fields) => log.info(fields ?? {}, msg),
    });
    return new SqliteStore(catalog, index, lock);
  } catch (err) {
    catalog.close();
    lock.release();
    throw err;
  }
}

/** The configured store: the embedded files by default, or a PostgreSQL database. */
export function openStore(config: Config, log: Logger, dim: number, modelId: string): Promise<Store> {
  if (config.store === 'embedded') return openEmbedded(config, log, dim, modelId);
  return PostgresStore.open({
    url: config.store,
    poolSize: config.pgPoolSize,
    dim,
    modelId,
    hnsw: { m: config.hnswM, efConstruction: config.hnswEfConstruction, efSearch: config.hnswEfSearch },
    log: (msg, fields) => log.info(fields ?? {}, msg),
  });
}

export async function openLikeness(config: Config, log: Logger, hooks: OpenHooks = {}): Promise<Likeness> {
  const backend = await initBackend(config.backend, { convKernels: config.convKernels });
  log.info({ backend: backend.name, provider: backend.provider, convolutions: backend.convolutions, skipped: backend.skipped }, 'tfjs backend ready');
  const embedder = await Embedder.open({
    modelDir: config.model,
    tta: config.tta,
    workers: config.workers,
    backend: config.backend === 'auto' ? backend.name : config.backend,
    convKernels: config.convKernels,
    batching: { maxBatch: config.maxBatch, maxWaitMs: config.batchWaitMs, maxQueue: config.maxQueue },
    decode: { maxPixels: config.maxPixels, allowSvg: config.allowSvg, timeoutSeconds: config.decodeTimeoutSeconds },
    onBatch: hooks.onBatch,
  });
  log.info({ model: embedder.modelId, dim: embedder.dim, workers: config.workers }, 'model loaded');
  let store: Store;
  try {
    store = await openStore(config, log, embedder.dim, embedder.modelId);
  } catch (err) {
    await embedder.close();
    throw err;
  }
  log.info({ store: store.kind }, 'store open');
  const images = new ItemImages(store, {
    thumbnailSize: config.thumbnailSize,
    keepOriginals: config.keepOriginals,
    limits: { maxPixels: config.maxPixels, allowSvg: config.allowSvg, timeoutSeconds: config.decodeTimeoutSeconds },
  });
  const service = new CatalogService(store, embedder, images);
  const shared = store.kind === 'postgres';
  const ingest = new IngestRunner(service, store, {
    roots: config.ingestRoots,
    chunk: config.ingestChunk,
    log,
    leaseMs: config.ingestLeaseSeconds * 1000,
    // On a shared database other replicas submit jobs and may die mid-job: keep looking.
    pollMs: shared && hooks.resumeJobs ? SHARED_JOB_POLL_MS : 0,
  });
  if (hooks.resumeJobs) await ingest.resumeUnfinished();
  return {
    config,
    backend,
    embedder,
    store,
    embedded: store instanceof SqliteStore ? { catalog: store.catalog, index: store.index, lock: store.lock } : undefined,
    service,
    ingest,
    evaluator: new CatalogEvaluator(store, embedder.modelId, embedder.dim),
    async close() {
      await ingest.stop();
      await store.close();
      await embedder.close();
    },
  };
}
