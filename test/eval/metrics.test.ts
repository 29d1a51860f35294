import { initBackend } from '../../src/runtime/backend';
import { annRecallSweep } from '../../src/eval/ann-recall';
import { knnClassify } from '../../src/eval/knn';
import { exactNeighbours, NeighbourTable } from '../../src/eval/neighbours';
import { relevantCounter, retrievalMetrics } from '../../src/eval/retrieval';
import { HnswIndex } from '../../src/index/hnsw-index';
import { normalize } from '../../src/index/vector-index';

const rows = (...vs: number[][]) => Float32Array.from(vs.flatMap((v) => Array.from(normalize(v))));

beforeAll(() => initBackend('wasm'));

describe('exactNeighbours', () => {
  // Five points on the unit circle at 0, 10, 20, 90 and 180 degrees.
  const deg = (d: number) => [Math.cos((d * Math.PI) / 180), Math.sin((d * Math.PI) / 180)];
  const bank = rows(deg(0), deg(10), deg(20), deg(90), deg(180));

  it('returns neighbours best first with cosine scores', async () => {
    const t = await exactNeighbours(bank, rows(deg(12)), 2, 3);
    expect(Array.from(t.indices)).toEqual([1, 2, 0]);
    expect(t.scores[0]).toBeCloseTo(Math.cos((2 * Math.PI) / 180), 5);
  });

  it('leave-one-out never returns the query itself, and caps k at the set size', async () => {
    const t = await exactNeighbours(bank, bank, 2, 10, { excludeSelf: true, maxEntries: 7 }); // tiny chunks
    expect(t.k).toBe(4);
    for (let q = 0; q < 5; q++) expect(Array.from(t.indices.subarray(q * 4, q * 4 + 4))).not.toContain(q);
    expect(Array.from(t.indices.subarray(0, 4))).toEqual([1, 2, 3, 4]);
    expect(Array.from(t.indices.subarray(3 * 4, 3 * 4 + 2))).toEqual([2, 1]);
  });
});

/** A hand-made table: 2 queries, 4 neighbours each. */
const table = (indices: number[], scores: number[], k: number): NeighbourTable => ({
  queries: indices.length / k,
  k,
  indices: Int32Array.from(indices),
  scores: Float32Array.from(scores),
});

describe('knnClassify', () => {
  const bankLabels = [0, 0, 1, 1, 2];

  it('weights votes by exp(s/T): one close neighbour outvotes two far ones', () => {
    // Query 0 neighbours: bank 2 (class 1, s=0.9), bank 0 (class 0, s=0.5), bank 1 (class 0, s=0.5).
    // Weighted (T=0.1): class 1 = e^9 = 8103, class 0 = 2 e^5 = 297  → 1. Majority: class 0 (2 votes).
    const t = table([2, 0, 1], [0.9, 0.5, 0.5], 3);
    expect(knnClassify(t, bankLabels, [1], 3, { k: 3, temperature: 0.1, vote: 'weighted' }).top1).toBe(1);
    expect(knnClassify(t, bankLabels, [1], 3, { k: 3, temperature: 0.1, vote: 'majority' }).top1).toBe(0);
    // With a hot temperature the weights flatten and the two far votes win: e^(0.9) < 2 e^(0.5).
    expect(knnClassify(t, bankLabels, [0], 3, { k: 3, temperature: 1, vote: 'weighted' }).top1).toBe(1);
  });

  it('breaks ties toward the nearer class, reports top-5, per-class accuracy and the confusion matrix', () => {
    // Query 0 (true 2): class 1 then class 0, one vote each, equal scores → class 1 (nearer).
    // Query 1 (true 0): class 0 twice → correct.
    const t = table([3, 0, 0, 1], [0.7, 0.7, 0.8, 0.6], 2);
    const r = knnClassify(t, bankLabels, [2, 0], 3, { k: 2, temperature: 0.1, vote: 'majority' });
    expect(r.top1).toBe(0.5);
    expect(r.top5).toBe(0.5); // class 2 got no vote at all: not in query 0's list
    expect(r.confusion).toEqual([
      [1, 0, 0],
      [0, 0, 0],
      [0, 1, 0],
    ]);
    expect(r.perClass[0]).toBe(1);
    expect(r.perClass[1]).toBeNaN();
    expect(r.perClass[2]).toBe(0);
  });

  it('uses at most the neighbours computed when k is larger', () => {
    const t = table([0, 2], [0.9, 0.1], 2);
    expect(knnClassify(t, bankLabels, [0], 3, { k: 200, temperature: 0.1, vote: 'weighted' })).toMatchObject({ k: 2, top1: 1 });
  });

  it('rejects a bad temperature, quoting it', () => {
    expect(() => knnClassify(table([0], [1], 1), bankLabels, [0], 3, { k: 1, temperature: 0, vote: 'weighted' })).toThrow(/got 0/);
  });
});

describe('retrievalMetrics', () => {
  it('matches recall@k, precision@k and mAP@k worked out by hand', () => {
    // Bank labels: a a b b b.  Query 0 (label a, R=2): ranking a b a b → rel 1 0 1 0
    //   P@1 = 1, P@3 = 2/3 → AP@4 = (1 + 2/3) / min(4, 2) = 0.8333; precision@4 = 0.5; hit.
    // Query 1 (label b, R=3): ranking a a b b → rel 0 0 1 1: AP@4 = (1/3 + 2/4) / 3 = 0.2778; precision 0.5; hit.
    const bankLabels = [0, 0, 1, 1, 1];
    const t = table([0, 2, 1, 3, 0, 1, 2, 3], [0, 0, 0, 0, 0, 0, 0, 0], 4);
    const r = retrievalMetrics(t, bankLabels, [0, 1], 4, relevantCounter(bankLabels, [0, 1], false));
    expect(r.recallAtK).toBe(1);
    expect(r.precisionAtK).toBeCloseTo(0.5, 10);
    expect(r.mapAtK).toBeCloseTo((5 / 6 + (1 / 3 + 1 / 2) / 3) / 2, 10);
    // At k=1: query 0 hits, query 1 misses.
    const r1 = retrievalMetrics(t, bankLabels, [0, 1], 1, relevantCounter(bankLabels, [0, 1], false));
    expect(r1).toMatchObject({ recallAtK: 0.5, precisionAtK: 0.5, mapAtK: 0.5 });
  });

  it('leave-one-out: a query whose label is unique has nothing relevant and is skipped', () => {
    const bankLabels = [0, 0, 1];
    const t = table([1, 2, 0, 2, 0, 1], [0, 0, 0, 0, 0, 0], 2);
    const r = retrievalMetrics(t, bankLabels, bankLabels, 2, relevantCounter(bankLabels, bankLabels, true));
    expect(r.queries).toBe(2);
    expect(r.mapAtK).toBe(1);
    expect(() => retrievalMetrics(t, bankLabels, bankLabels, 3, () => 1)).toThrow(/exceeds/);
  });
});

describe('annRecallSweep', () => {
  // Twenty random unit vectors plus one image stored twice (labels 100 and 101, equal vectors). Exact
  // search keeps one copy by row order; HNSW returns whichever its graph reaches. Either is a correct
  // nearest neighbour, so recall must be 1 whichever order the bank lists the copies in.
  const dim = 8;
  const rng = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const next = rng(3);
  const others = Array.from({ length: 20 }, () => normalize(Array.from({ length: dim }, next)));
  const twin = normalize(Array.from({ length: dim }, next));
  const hnsw = HnswIndex.create(dim);
  others.forEach((v, i) => hnsw.add(i, v));
  hnsw.add(100, twin);
  hnsw.add(101, twin);

  it.each([[100, 101], [101, 100]])('counts an equally near copy as a hit (bank order %i, %i)', async (first, second) => {
    const labelOfRow = [...others.map((_, i) => i), first, second];
    const bank = new Float32Array(labelOfRow.length * dim);
    [...others, twin, twin].forEach((v, i) => bank.set(v, i * dim));
    const table = await exactNeighbours(bank, twin, dim, 1);
    expect(labelOfRow[table.indices[0]]).toBe(first);
    const [point] = annRecallSweep(hnsw, [twin], { table, labelOfRow }, 1, [50]);
    expect(point.recall).toBe(1);
  });

  it('still counts a worse answer as a miss', async () => {
    const bank = new Float32Array(others.length * dim);
    others.forEach((v, i) => bank.set(v, i * dim));
    const table = await exactNeighbours(bank, twin, dim, 2);
    // An index holding only the second-best vector: its answer scores below the exact first.
    const worse = HnswIndex.create(dim);
    worse.add(table.indices[1], others[table.indices[1]]);
    const [point] = annRecallSweep(worse, [twin], { table }, 1, [50]);
    expect(point.recall).toBe(0);
  });
});
