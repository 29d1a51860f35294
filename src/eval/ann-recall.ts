/**
 * How good is the approximate index? recall@k of HNSW answers against exact search over the same
 * vectors, for a sweep of the search beam width ef, with queries/s at each point.
 */
import type { NeighbourTable } from './neighbours';

export interface AnnPoint {
  ef: number;
  recall: number;
  queriesPerSecond: number;
}

export interface AnnSearcher {
  setEfSearch(ef: number): void;
  search(query: Float32Array, k: number): Array<{ label: number }>;
}

/**
 * queries: the query vectors; truth: exact neighbours of each query, as *labels* (the same ids the
 * ANN index returns) row-major [queries * truthK]; k <= truthK.
 */
export function annRecallSweep(index: AnnSearcher, queries: Float32Array[], truth: Int32Array, truthK: number, k: number, efs: number[]): AnnPoint[] {
  if (k > truthK) throw new RangeError(`k = ${k} exceeds the ${truthK} exact neighbours given`);
  return efs.map((ef) => {
    index.setEfSearch(ef);
    const t = performance.now();
    const found = queries.map((q) => index.search(q, k));
    const seconds = (performance.now() - t) / 1000;
    let hits = 0;
    found.forEach((res, qi) => {
      const want = new Set(truth.subarray(qi * truthK, qi * truthK + k));
      hits += res.filter((r) => want.has(r.label)).length;
    });
    return { ef, recall: hits / (queries.length * k), queriesPerSecond: Math.round(queries.length / Math.max(seconds, 1e-9)) };
  });
}

/**
 * The same sweep for a store whose search is asynchronous (pgvector) and takes ef per query, so
 * concurrent requests never see another's ef. Queries run one after another: queries/s is latency-bound.
 */
export async function annRecallSweepAsync(
  search: (query: Float32Array, k: number, ef: number) => Promise<Array<{ label: number }>>,
  queries: Float32Array[],
  truth: Int32Array,
  truthK: number,
  k: number,
  efs: number[],
): Promise<AnnPoint[]> {
  if (k > truthK) throw new RangeError(`k = ${k} exceeds the ${truthK} exact neighbours given`);
  const points: AnnPoint[] = [];
  for (const ef of efs) {
    const t = performance.now();
    const found: Array<Array<{ label: number }>> = [];
    for (const q of queries) found.push(await search(q, k, ef));
    const seconds = (performance.now() - t) / 1000;
    let hits = 0;
    found.forEach((res, qi) => {
      const want = new Set(truth.subarray(qi * truthK, qi * truthK + k));
      hits += res.filter((r) => want.has(r.label)).length;
    });
    points.push({ ef, recall: hits / (queries.length * k), queriesPerSecond: Math.round(queries.length / Math.max(seconds, 1e-9)) });
  }
  return points;
}

/** Maps a table of bank row indices to labels. */
export function tableToLabels(table: NeighbourTable, labelOfRow: ArrayLike<number>): Int32Array {
  return Int32Array.from(table.indices, (row) => labelOfRow[row]);
}
