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
  search(query: Float32Array, k: number): Found[];
}

type Found = { label: number; score: number };

/**
 * Exact neighbours of each query: `table` holds bank rows best first, `labelOfRow` maps a row to the id
 * the ANN index returns for it (the identity when they are the same).
 */
export interface AnnTruth {
  table: NeighbourTable;
  labelOfRow?: ArrayLike<number>;
}

/**
 * An answer scoring within this of the k-th exact score is as good as the exact one: with duplicate
 * images (equal vectors) exact search keeps one of them arbitrarily and HNSW may return the other,
 * which is not a miss. The margin is float32 rounding of a 128-1024-term dot product, far below the
 * gap between genuinely different neighbours.
 */
const TIE = 1e-5;

function hitsOf(found: Found[], truth: AnnTruth, query: number, k: number): number {
  const { table, labelOfRow } = truth;
  const base = query * table.k;
  const want = new Set<number>();
  for (let j = 0; j < k; j++) {
    const row = table.indices[base + j];
    want.add(labelOfRow ? labelOfRow[row] : row);
  }
  const kth = table.scores[base + k - 1];
  return found.slice(0, k).filter((r) => want.has(r.label) || r.score >= kth - TIE).length;
}

function checkK(truth: AnnTruth, k: number): void {
  if (k < 1 || k > truth.table.k) throw new RangeError(`k = ${k} must be between 1 and the ${truth.table.k} exact neighbours given`);
}

/** queries: the query vectors, in the order of the truth table's rows; k <= truth.table.k. */
export function annRecallSweep(index: AnnSearcher, queries: Float32Array[], truth: AnnTruth, k: number, efs: number[]): AnnPoint[] {
  checkK(truth, k);
  return efs.map((ef) => {
    index.setEfSearch(ef);
    const t = performance.now();
    const found = queries.map((q) => index.search(q, k));
    const seconds = (performance.now() - t) / 1000;
    const hits = found.reduce((sum, res, qi) => sum + hitsOf(res, truth, qi, k), 0);
    return { ef, recall: hits / (queries.length * k), queriesPerSecond: Math.round(queries.length / Math.max(seconds, 1e-9)) };
  });
}

/**
 * The same sweep for a store whose search is asynchronous (pgvector) and takes ef per query, so
 * concurrent requests never see another's ef. `search(q, k, ef)` answers query number q. Queries run
 * one after another: queries/s is latency-bound.
 */
export async function annRecallSweepAsync(
  search: (query: number, k: number, ef: number) => Promise<Found[]>,
  queries: number,
  truth: AnnTruth,
  k: number,
  efs: number[],
): Promise<AnnPoint[]> {
  checkK(truth, k);
  const points: AnnPoint[] = [];
  for (const ef of efs) {
    const t = performance.now();
    const found: Found[][] = [];
    for (let q = 0; q < queries; q++) found.push(await search(q, k, ef));
    const seconds = (performance.now() - t) / 1000;
    const hits = found.reduce((sum, res, qi) => sum + hitsOf(res, truth, qi, k), 0);
    points.push({ ef, recall: hits / (queries * k), queriesPerSecond: Math.round(queries / Math.max(seconds, 1e-9)) });
  }
  return points;
}
