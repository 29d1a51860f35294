/**
 * Evaluation speed: weighted k-NN (k=200) and retrieval metrics for 10,000 queries against 60,000
 * bank vectors of dimension 128 (synthetic, clustered, 10 labels), exact search on the tfjs backend.
 * Prints one JSON line.
 *
 *   npx tsx bench/eval-knn.ts [--queries 10000] [--bank 60000] [--dim 128] [--k 200]
 */
import { initBackend } from '../src/runtime/backend';
import { knnClassify } from '../src/eval/knn';
import { exactNeighbours } from '../src/eval/neighbours';
import { relevantCounter, retrievalMetrics } from '../src/eval/retrieval';
import { arg } from './args';
import { clustered } from './synthetic';

async function main(): Promise<void> {
  const nq = Number(arg('queries', 'BENCH_QUERIES', '10000'));
  const nb = Number(arg('bank', 'BENCH_BANK', '60000'));
  const dim = Number(arg('dim', 'BENCH_DIM', '128'));
  const k = Number(arg('k', 'BENCH_K', '200'));
  const backend = await initBackend('auto');
  const flat = (vs: Float32Array[]) => {
    const out = new Float32Array(vs.length * dim);
    vs.forEach((v, i) => out.set(v, i * dim));
    return out;
  };
  // Ten clusters = ten labels; label = cluster index, recovered from generation order below.
  const labelled = (n: number, seed: number) => {
    const vecs: Float32Array[] = [];
    const labels: number[] = [];
    for (let c = 0; c < 10; c++) {
      const part = clustered(Math.ceil(n / 10), dim, 1, 0.25, seed * 100 + c, 1000 + c);
      vecs.push(...part);
      labels.push(...part.map(() => c));
    }
    return { vectors: flat(vecs.slice(0, n)), labels: labels.slice(0, n) };
  };
  const bank = labelled(nb, 1);
  const queries = labelled(nq, 2);
  const t0 = performance.now();
  const table = await exactNeighbours(bank.vectors, queries.vectors, dim, k);
  const tSearch = performance.now();
  const knn = knnClassify(table, bank.labels, queries.labels, 10, { k, temperature: 0.1, vote: 'weighted' });
  const retrieval = retrievalMetrics(table, bank.labels, queries.labels, 10, relevantCounter(bank.labels, queries.labels, false));
  const tEnd = performance.now();
  console.log(
    JSON.stringify({
      bench: 'eval-knn',
      backend: backend.name,
      queries: nq,
      bank: nb,
      dim,
      k,
      exactSearchSeconds: +((tSearch - t0) / 1000).toFixed(1),
      metricsSeconds: +((tEnd - tSearch) / 1000).toFixed(2),
      totalSeconds: +((tEnd - t0) / 1000).toFixed(1),
      top1: +knn.top1.toFixed(4),
      mapAt10: +retrieval.mapAtK.toFixed(4),
    }),
  );
}

void main();
