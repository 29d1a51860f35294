/**
 * HNSW recall@10 against exact search, and queries/s, at 100k vectors (dim 128), for a sweep of
 * efSearch. Data: a mixture of Gaussian clusters on the unit sphere (embeddings cluster by class),
 * seeded. Prints one JSON line.
 *
 *   npx tsx bench/hnsw.ts [--n 100000] [--dim 128] [--queries 1000]
 */
import { ExactIndex } from '../src/index/exact-index';
import { HnswIndex } from '../src/index/hnsw-index';
import { arg } from './args';
import { clustered } from './synthetic';

async function main(): Promise<void> {
  const n = Number(arg('n', 'BENCH_N', '100000'));
  const dim = Number(arg('dim', 'BENCH_DIM', '128'));
  const nq = Number(arg('queries', 'BENCH_QUERIES', '1000'));
  const k = 10;
  const all = clustered(n + nq, dim, 100, 0.12, 42);
  const data = all.slice(0, n);
  const queries = all.slice(n);

  const exact = new ExactIndex(dim, n);
  data.forEach((v, i) => exact.add(i, v));
  let t = performance.now();
  const truth = queries.map((q) => new Set(exact.search(q, k).map((r) => r.label)));
  const exactQps = nq / ((performance.now() - t) / 1000);

  const hnsw = HnswIndex.create(dim, { initialCapacity: n, m: 16, efConstruction: 200 });
  t = performance.now();
  data.forEach((v, i) => hnsw.add(i, v));
  const buildSeconds = (performance.now() - t) / 1000;

  const sweep = [];
  for (const ef of [10, 20, 40, 64, 100, 200, 400]) {
    hnsw.setEfSearch(ef);
    t = performance.now();
    const found = queries.map((q) => hnsw.search(q, k));
    const qps = nq / ((performance.now() - t) / 1000);
    const hits = found.reduce((s, res, i) => s + res.filter((r) => truth[i].has(r.label)).length, 0);
    sweep.push({ ef, recallAt10: +(hits / (nq * k)).toFixed(4), qps: Math.round(qps), speedupVsExact: +(qps / exactQps).toFixed(1) });
  }
  console.log(JSON.stringify({ bench: 'hnsw', n, dim, queries: nq, m: 16, efConstruction: 200, buildSeconds: +buildSeconds.toFixed(1), exactQps: Math.round(exactQps), sweep }));
}

void main();
