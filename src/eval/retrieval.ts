/**
 * Retrieval quality with labels as relevance: a bank item is relevant to a query when it has the
 * query's label. The query itself must not be in its own neighbour list (use excludeSelf when the
 * queries are the bank).
 *
 *   recall@k    share of queries with at least one relevant item in their top k (the "hit rate")
 *   precision@k mean share of relevant items in the top k
 *   mAP@k       mean over queries of AP@k = (1 / min(k, R)) * sum_{i<=k} P@i * rel_i, R = number of
 *               relevant bank items for that query (so a perfect ranking scores 1 even when R < k)
 */
import type { NeighbourTable } from './neighbours';

export interface RetrievalReport {
  k: number;
  queries: number;
  recallAtK: number;
  precisionAtK: number;
  mapAtK: number;
}

/**
 * relevantCount(q): R for query q (how many bank items share its label, itself excluded). Queries with
 * R = 0 are skipped: no ranking can be right or wrong for them.
 */
export function retrievalMetrics(table: NeighbourTable, bankLabels: ArrayLike<number>, queryLabels: ArrayLike<number>, k: number, relevantCount: (q: number) => number): RetrievalReport {
  if (k > table.k) throw new RangeError(`k = ${k} exceeds the ${table.k} neighbours computed`);
  let counted = 0;
  let hits = 0;
  let precision = 0;
  let map = 0;
  for (let q = 0; q < table.queries; q++) {
    const r = relevantCount(q);
    if (r === 0) continue;
    counted++;
    let rel = 0;
    let ap = 0;
    for (let i = 0; i < k; i++) {
      if (bankLabels[table.indices[q * table.k + i]] === queryLabels[q]) {
        rel++;
        ap += rel / (i + 1);
      }
    }
    if (rel > 0) hits++;
    precision += rel / k;
    map += ap / Math.min(k, r);
  }
  const mean = (x: number) => (counted === 0 ? NaN : x / counted);
  return { k, queries: counted, recallAtK: mean(hits), precisionAtK: mean(precision), mapAtK: mean(map) };
}

/** R per query from label counts: bank items with the query's label, minus one when the query is in the bank. */
export function relevantCounter(bankLabels: ArrayLike<number>, queryLabels: ArrayLike<number>, queriesInBank: boolean): (q: number) => number {
  const counts = new Map<number, number>();
  for (let i = 0; i < bankLabels.length; i++) counts.set(bankLabels[i], (counts.get(bankLabels[i]) ?? 0) + 1);
  return (q) => (counts.get(queryLabels[q]) ?? 0) - (queriesInBank ? 1 : 0);
}
