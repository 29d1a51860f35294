/**
 * The HNSW index at catalogue scale: 1,000,000 synthetic vectors of the served dimension (64, the shipped model).
 * Reports build time, memory (RSS includes the exact-search copy of the vectors, 4 bytes x dim x n),
 * snapshot file size, and for efSearch 64, 128 and 256: search latency p50/p99 (500 queries) and
 * recall@10 against exact search (50 queries). Data and queries come from the same 1000 clusters.
 * Prints one JSON line.
 *
 *   npx tsx bench/index-scale.ts [--n 1000000] [--dim 64] [--ef-construction 100]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ExactIndex } from '../src/index/exact-index';
import { HnswIndex } from '../src/index/hnsw-index';
import { tempDir } from '../test/helpers';
import { arg } from './args';
import { clustered } from './synthetic';

async function main(): Promise<void> {
  const n = Number(arg('n', 'BENCH_N', '1000000'));
  const dim = Number(arg('dim', 'BENCH_DIM', '64'));
  const efConstruction = Number(arg('ef-construction', 'BENCH_EF_CONSTRUCTION', '100'));
  const rss0 = process.memoryUsage().rss;
  const hnsw = HnswIndex.create(dim, { initialCapacity: n, m: 16, efConstruction, efSearch: 64 });
  const exact = new ExactIndex(dim, n);
  let t = performance.now();
  const batch = 50_000;
  for (let start = 0; start < n; start += batch) {
    // Same 1000 cluster centres for every batch and for the queries (centreSeed 1); only the noise differs.
    const vectors = clustered(Math.min(batch, n - start), dim, 1000, 0.15, start + 1, 1);
    vectors.forEach((v, i) => {
      hnsw.add(start + i, v);
      exact.add(start + i, v);
    });
  }
  const buildSeconds = (performance.now() - t) / 1000;
  const rssAfterBuild = process.memoryUsage().rss;

  const file = path.join(tempDir(), 'index.bin');
  t = performance.now();
  await hnsw.save(file);
  const saveSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  await HnswIndex.load(file, dim);
  const loadSeconds = (performance.now() - t) / 1000;

  // Queries from the same distribution.
  const queries = clustered(500, dim, 1000, 0.15, 999_999, 1);
  // Exact search over 1M vectors costs ~0.3 s a query in JavaScript: a small sample suffices.
  const recallQueries = queries.slice(0, 50);
  const truths = recallQueries.map((q) => new Set(exact.search(q, 10).map((r) => r.label)));
  const sweep = [64, 128, 256].map((ef) => {
    hnsw.setEfSearch(ef);
    let hits = 0;
    recallQueries.forEach((q, i) => (hits += hnsw.search(q, 10).filter((r) => truths[i].has(r.label)).length));
    const lat: number[] = [];
    for (const q of queries) {
      const s = performance.now();
      hnsw.search(q, 10);
      lat.push(performance.now() - s);
    }
    lat.sort((a, b) => a - b);
    return { ef, recallAt10: +(hits / (recallQueries.length * 10)).toFixed(3), p50Ms: +lat[Math.floor(lat.length * 0.5)].toFixed(3), p99Ms: +lat[Math.floor(lat.length * 0.99)].toFixed(3) };
  });
  console.log(
    JSON.stringify({
      bench: 'index-scale',
      n,
      dim,
      m: 16,
      efConstruction,
      efSearch: 64,
      buildSeconds: +buildSeconds.toFixed(1),
      insertsPerS: Math.round(n / buildSeconds),
      rssMiB: Math.round(rssAfterBuild / 2 ** 20),
      rssGrowthMiB: Math.round((rssAfterBuild - rss0) / 2 ** 20),
      snapshotMiB: Math.round(fs.statSync(file).size / 2 ** 20),
      saveSeconds: +saveSeconds.toFixed(1),
      loadSeconds: +loadSeconds.toFixed(1),
      // At the default efSearch (the sweep's first entry).
      searchP50Ms: sweep[0].p50Ms,
      searchP99Ms: sweep[0].p99Ms,
      recallQueries: recallQueries.length,
      sweep,
    }),
  );
}

void main();
