/**
 * k-NN classification of queries from their labelled neighbours.
 *
 * Weighted vote, InstDisc protocol (Wu et al. 2018, arXiv:1805.01978, eq. 7; the standard monitor of
 * self-supervised learning): each of the k nearest bank items votes for its class with weight
 * exp(s/T), s its cosine similarity. Majority vote: weight 1. Ties between classes go to the class
 * met first in neighbour order (the nearest).
 */
import type { NeighbourTable } from './neighbours';

export interface KnnConfig {
  k: number;
  temperature: number;
  vote: 'weighted' | 'majority';
}

/** One more than the largest label: a loop, since spreading a million labels into Math.max overflows the stack. */
export function classCount(...labelSets: ArrayLike<number>[]): number {
  let top = -1;
  for (const labels of labelSets) for (let i = 0; i < labels.length; i++) if (labels[i] > top) top = labels[i];
  return top + 1;
}

export const DEFAULT_KNN: KnnConfig = { k: 200, temperature: 0.1, vote: 'weighted' };

export interface KnnReport {
  k: number;
  temperature: number;
  vote: KnnConfig['vote'];
  queries: number;
  top1: number;
  top5: number;
  /** Accuracy per true class (index = class). NaN for classes without queries. */
  perClass: number[];
  /** confusion[true][predicted] counts. */
  confusion: number[][];
}

/**
 * table: neighbours of each query (k >= cfg.k is used up to cfg.k); bankLabels: [N] class of each bank
 * row; queryLabels: [Q]. Classes are 0..numClasses-1.
 */
export function knnClassify(table: NeighbourTable, bankLabels: ArrayLike<number>, queryLabels: ArrayLike<number>, numClasses: number, cfg: KnnConfig = DEFAULT_KNN): KnnReport {
  if (queryLabels.length !== table.queries) throw new RangeError(`${queryLabels.length} query labels for ${table.queries} queries`);
  if (!(cfg.temperature > 0)) throw new RangeError(`temperature must be > 0, got ${cfg.temperature}`);
  const k = Math.min(cfg.k, table.k);
  const confusion = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  let top1 = 0;
  let top5 = 0;
  const score = new Float64Array(numClasses);
  const firstSeen = new Int32Array(numClasses);
  for (let q = 0; q < table.queries; q++) {
    score.fill(0);
    firstSeen.fill(k);
    for (let j = 0; j < k; j++) {
      const c = bankLabels[table.indices[q * table.k + j]];
      score[c] += cfg.vote === 'weighted' ? Math.exp(table.scores[q * table.k + j] / cfg.temperature) : 1;
      if (firstSeen[c] === k) firstSeen[c] = j;
    }
    // Classes by score, ties by nearness; only classes that got a vote can be predicted.
    const ranked = Array.from({ length: numClasses }, (_, c) => c)
      .filter((c) => firstSeen[c] < k)
      .sort((a, b) => score[b] - score[a] || firstSeen[a] - firstSeen[b]);
    const truth = queryLabels[q];
    if (ranked.length > 0) confusion[truth][ranked[0]]++;
    if (ranked[0] === truth) top1++;
    if (ranked.slice(0, 5).includes(truth)) top5++;
  }
  const perClass = confusion.map((row, c) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total === 0 ? NaN : row[c] / total;
  });
  return { k, temperature: cfg.temperature, vote: cfg.vote, queries: table.queries, top1: top1 / table.queries, top5: top5 / table.queries, perClass, confusion };
}
