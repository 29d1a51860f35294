/**
 * Searches with a metadata filter on the embedded store (SQLite + hnswlib): hnswlib asks the filter
 * about each candidate it meets, and each answer is a SQLite lookup of that item's metadata. Synthetic
 * clustered vectors with metadata {shard: i % S, kind: 'a' | 'b', live: bool}; the same queries run
 * unfiltered (baseline, same run), with one field (a tenth of the items pass), and with three fields.
 * Prints one JSON line.
 *
 *   npx tsx bench/filtered-search.ts [--n 50000] [--dim 64] [--queries 300] [--k 10]
 */
import pino from 'pino';
import { openStore } from '../src/catalog/open';
import { toIndexChange } from '../src/catalog/store';
import type { MetadataFilter } from '../src/catalog/catalog';
import { DEFAULTS } from '../src/config/config';
import { tempDir } from '../test/helpers';
import { arg } from './args';
import { clustered } from './synthetic';

const SHARDS = 10;

async function main(): Promise<void> {
  const n = Number(arg('n', 'BENCH_N', '50000'));
  const dim = Number(arg('dim', 'BENCH_DIM', '64'));
  const nq = Number(arg('queries', 'BENCH_QUERIES', '300'));
  const k = Number(arg('k', 'BENCH_K', '10'));
  const store = await openStore({ ...DEFAULTS, dataDir: tempDir(), snapshotEvery: 0 }, pino({ level: 'warn' }), dim, 'bench');
  try {
    const vectors = clustered(n, dim, 500, 0.15, 1);
    const chunk = 2000;
    for (let i = 0; i < n; i += chunk) {
      const items = vectors.slice(i, i + chunk).map((vector, j) => {
        const at = i + j;
        return { id: `item-${at}`, metadata: { shard: at % SHARDS, kind: at % 2 ? 'a' : 'b', live: at % 3 !== 0 }, sha256: null, modelId: 'bench', vector };
      });
      await store.transaction((tx) => tx.upsertMany(items), (results) => results.map(toIndexChange));
    }
    const queries = clustered(nq, dim, 500, 0.15, 77, 1);
    const run = async (filter?: MetadataFilter) => {
      let hits = 0;
      const t = performance.now();
      for (const q of queries) {
        const found = await store.search(q, k, { filter });
        hits += found.length;
      }
      return { qps: Math.round(nq / ((performance.now() - t) / 1000)), meanHits: +(hits / nq).toFixed(2) };
    };
    await run(); // warm-up
    const unfiltered = await run();
    const oneField = await run({ shard: 3 });
    const threeFields = await run({ shard: 3, kind: 'a', live: true });
    const unfilteredAfter = await run();
    console.log(
      JSON.stringify({
        bench: 'filtered-search',
        n,
        dim,
        queries: nq,
        k,
        unfiltered,
        unfilteredAfter,
        oneField,
        threeFields,
        oneFieldOverUnfiltered: +(oneField.qps / ((unfiltered.qps + unfilteredAfter.qps) / 2)).toFixed(3),
        threeFieldsOverUnfiltered: +(threeFields.qps / ((unfiltered.qps + unfilteredAfter.qps) / 2)).toFixed(3),
      }),
    );
  } finally {
    await store.close();
  }
}

void main();
