/** Prometheus metrics, on a registry of the app's own (no global default registry). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  embedBatchSize: Histogram;
  embedBatchSeconds: Histogram;
  indexSize: Gauge;
  catalogItems: Gauge;
  embedQueue: Gauge;
  errors: Counter<'code'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'likeness_' });
  return {
    registry,
    httpDuration: new Histogram({
      name: 'likeness_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    embedBatchSize: new Histogram({
      name: 'likeness_embed_batch_size',
      help: 'Images per model call',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers: [registry],
    }),
    embedBatchSeconds: new Histogram({
      name: 'likeness_embed_batch_seconds',
      help: 'Time per model call',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    indexSize: new Gauge({ name: 'likeness_index_size', help: 'Vectors in the search index', registers: [registry] }),
    catalogItems: new Gauge({ name: 'likeness_catalog_items', help: 'Items in the catalogue', registers: [registry] }),
    embedQueue: new Gauge({ name: 'likeness_embed_queue', help: 'Images queued or being embedded', registers: [registry] }),
    errors: new Counter({ name: 'likeness_errors_total', help: 'Error responses by code', labelNames: ['code'], registers: [registry] }),
  };
}
