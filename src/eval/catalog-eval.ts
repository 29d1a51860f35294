/**
 * Quality checks on the live catalogue: leave-one-out k-NN classification and retrieval with labels
 * taken from a metadata field, and the HNSW index's recall against exact search.
 */
import type { Store } from '../catalog/store';
import { badRequest } from '../errors';
import { annRecallSweepAsync, AnnPoint } from './ann-recall';
import { DEFAULT_KNN, knnClassify, KnnReport } from './knn';
import { exactNeighbours, NeighbourTable } from './neighbours';
import { relevantCounter, retrievalMetrics, RetrievalReport } from './retrieval';

/** Rows read from the catalogue per step. */
const READ_CHUNK = 5000;

export interface CatalogEvalRequest {
  labelField: string;
  /** Evaluate this many queries (a seeded sample of the labelled items); all when undefined. */
  sample?: number;
  k?: number;
  temperature?: number;
  seed?: number;
}

export interface CatalogEvalReport {
  model: string;
  labelField: string;
  items: number;
  queries: number;
  classes: string[];
  knn: { weighted: KnnReport; majority: KnnReport };
  retrieval: RetrievalReport[];
  seconds: number;
}

/** Deterministic sample of `n` of `0..total-1` (Fisher-Yates with a seeded LCG). */
export function sampleIndices(total: number, n: number, seed: number): number[] {
  const idx = Array.from({ length: total }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < Math.min(n, total); i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = i + (s % (total - i));
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, Math.min(n, total)).sort((a, b) => a - b);
}

interface Loaded {
  vectors: Float32Array;
  labels: number[];
  itemLabels: number[];
  classes: string[];
}

export class CatalogEvaluator {
  constructor(
    private readonly store: Store,
    private readonly modelId: string,
    private readonly dim: number,
  ) {}

  /** Vectors of the served model's items; with `labelField`, only items that have that field. */
  private async load(labelField?: string): Promise<Loaded> {
    const vecs: Float32Array[] = [];
    const labels: number[] = [];
    const itemLabels: number[] = [];
    const classIndex = new Map<string, number>();
    for await (const chunk of this.store.itemsOf(this.modelId, READ_CHUNK)) {
      for (const item of chunk) {
        let cls = -1;
        if (labelField) {
          const v = item.metadata[labelField];
          if (v === undefined || v === null || v === '') continue;
          const key = String(v);
          if (!classIndex.has(key)) classIndex.set(key, classIndex.size);
          cls = classIndex.get(key)!;
        }
        vecs.push(item.vector);
        labels.push(cls);
        itemLabels.push(item.label);
      }
    }
    const vectors = new Float32Array(vecs.length * this.dim);
    vecs.forEach((v, i) => vectors.set(v, i * this.dim));
    return { vectors, labels, itemLabels, classes: [...classIndex.keys()] };
  }

  async evaluate(req: CatalogEvalRequest): Promise<CatalogEvalReport> {
    const t0 = performance.now();
    const k = req.k ?? DEFAULT_KNN.k;
    const temperature = req.temperature ?? DEFAULT_KNN.temperature;
    const data = await this.load(req.labelField);
    const n = data.labels.length;
    if (n < 2) throw badRequest('NOT_ENOUGH_LABELS', `only ${n} item(s) have metadata field '${req.labelField}'; need at least 2`);
    if (data.classes.length < 2) throw badRequest('NOT_ENOUGH_LABELS', `metadata field '${req.labelField}' has a single value; need at least 2 classes`);
    const picked = req.sample === undefined ? undefined : sampleIndices(n, req.sample, req.seed ?? 1);
    const queryRows = picked ?? Array.from({ length: n }, (_, i) => i);
    const queries = new Float32Array(queryRows.length * this.dim);
    queryRows.forEach((r, i) => queries.set(data.vectors.subarray(r * this.dim, (r + 1) * this.dim), i * this.dim));
    const queryLabels = queryRows.map((r) => data.labels[r]);
    // Leave-one-out against the whole labelled set: ask for one extra neighbour and drop the query itself.
    const raw = await exactNeighbours(data.vectors, queries, this.dim, k + 1);
    const table = dropSelf(raw, queryRows);
    const numClasses = data.classes.length;
    const weighted = knnClassify(table, data.labels, queryLabels, numClasses, { k, temperature, vote: 'weighted' });
    const majority = knnClassify(table, data.labels, queryLabels, numClasses, { k, temperature, vote: 'majority' });
    const relevant = relevantCounter(data.labels, queryLabels, true);
    const retrieval = [1, 10].filter((kk) => kk <= table.k).map((kk) => retrievalMetrics(table, data.labels, queryLabels, kk, relevant));
    return {
      model: this.modelId,
      labelField: req.labelField,
      items: n,
      queries: queryRows.length,
      classes: data.classes,
      knn: { weighted, majority },
      retrieval,
      seconds: (performance.now() - t0) / 1000,
    };
  }

  /** The store's ANN index (hnswlib or pgvector): recall@k against exact search for `sample` catalogue items used as queries. */
  async annRecall(opts: { sample: number; k: number; efs: number[]; seed?: number }): Promise<{ model: string; items: number; queries: number; k: number; sweep: AnnPoint[] }> {
    const data = await this.load();
    const n = data.itemLabels.length;
    if (n === 0) return { model: this.modelId, items: 0, queries: 0, k: opts.k, sweep: [] };
    const rows = sampleIndices(n, opts.sample, opts.seed ?? 1);
    const queries = rows.map((r) => data.vectors.slice(r * this.dim, (r + 1) * this.dim));
    const flat = new Float32Array(rows.length * this.dim);
    queries.forEach((q, i) => flat.set(q, i * this.dim));
    // The queries are catalogue items: each would find itself first in both searches, an easy hit
    // that inflates recall by up to 1/k. Both sides ask for one more and drop the query's own item.
    const table = dropSelf(await exactNeighbours(data.vectors, flat, this.dim, opts.k + 1), rows);
    const k = Math.min(opts.k, table.k);
    if (k === 0) return { model: this.modelId, items: n, queries: rows.length, k, sweep: [] };
    const search = async (q: number, kk: number, ef: number) => {
      const self = data.itemLabels[rows[q]];
      return (await this.store.search(queries[q], kk + 1, { ef })).filter((r) => r.label !== self).slice(0, kk);
    };
    const sweep = await annRecallSweepAsync(search, rows.length, { table, labelOfRow: data.itemLabels }, k, opts.efs);
    return { model: this.modelId, items: n, queries: rows.length, k, sweep };
  }
}

/** Removes each query's own row from its neighbour list (leave-one-out), keeping k = raw.k - 1. */
function dropSelf(raw: NeighbourTable, selfRows: number[]): NeighbourTable {
  const k = raw.k - 1;
  const indices = new Int32Array(raw.queries * k);
  const scores = new Float32Array(raw.queries * k);
  for (let q = 0; q < raw.queries; q++) {
    let w = 0;
    for (let j = 0; j < raw.k && w < k; j++) {
      const row = raw.indices[q * raw.k + j];
      if (row === selfRows[q]) continue;
      indices[q * k + w] = row;
      scores[q * k + w] = raw.scores[q * raw.k + j];
      w++;
    }
  }
  return { queries: raw.queries, k, indices, scores };
}
