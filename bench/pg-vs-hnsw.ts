/**
 * PostgreSQL + pgvector against the embedded hnswlib index, in one run:
 * 1. recall@10 against exact search and queries/s for an ef_search sweep, both indexes built with
 *    the same m / ef_construction over the same synthetic vectors (seeded clusters on the sphere);
 * 2. bulk ingest images/s with one `likeness serve` replica, then two, on one database.
 * The database is PGlite (PostgreSQL 18 compiled to wasm, with pgvector 0.8) served over the wire
 * protocol in a child process: the store talks to it with `pg` as to a real server. Prints one JSON line.
 *
 *   npx tsx bench/pg-vs-hnsw.ts [--n 100000] [--dim 64] [--m 16] [--ef-construction 64] [--queries 200] [--images 2000]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger } from '../src/cli/logger';
import { PostgresStore } from '../src/catalog/postgres/pg-store';
import { SHIPPED_MODEL } from '../src/config/config';
import { ExactIndex } from '../src/index/exact-index';
import { HnswIndex } from '../src/index/hnsw-index';
import { ChildServer, fmnistFixtures, spawnServer, tempDir } from '../test/helpers';
import { startPostgres } from '../test/store/pg-server';
import { arg } from './args';
import { clustered } from './synthetic';

const EFS = [10, 20, 40, 80, 160];
const K = 10;
const INSERT_CHUNK = 1000;
const CLUSTERS = 1000;
const SPREAD = 0.15;

interface Point {
  ef: number;
  recall: number;
  qps: number;
}

async function sweep(queries: Float32Array[], truth: Set<number>[], search: (q: Float32Array, ef: number) => Promise<number[]> | number[]): Promise<Point[]> {
  const out: Point[] = [];
  for (const ef of EFS) {
    let hits = 0;
    const t = performance.now();
    for (let i = 0; i < queries.length; i++) hits += (await search(queries[i], ef)).filter((l) => truth[i].has(l)).length;
    const seconds = (performance.now() - t) / 1000;
    out.push({ ef, recall: +(hits / (queries.length * K)).toFixed(4), qps: Math.round(queries.length / seconds) });
  }
  return out;
}

async function vectorSearch(n: number, dim: number, m: number, efConstruction: number, nq: number) {
  const vectors = clustered(n, dim, CLUSTERS, SPREAD, 1);
  const queries = clustered(nq, dim, CLUSTERS, SPREAD, 999_999, 1);
  const exact = new ExactIndex(dim, n);
  vectors.forEach((v, i) => exact.add(i + 1, v));
  const truth = queries.map((q) => new Set(exact.search(q, K).map((r) => r.label)));

  let t = performance.now();
  const hnsw = HnswIndex.create(dim, { initialCapacity: n, m, efConstruction, efSearch: 64 });
  vectors.forEach((v, i) => hnsw.add(i + 1, v));
  const hnswBuild = (performance.now() - t) / 1000;
  const hnswSweep = await sweep(queries, truth, (q, ef) => {
    hnsw.setEfSearch(ef);
    return hnsw.search(q, K).map((r) => r.label);
  });

  const pg = await startPostgres();
  const log = createLogger('silent');
  try {
    const store = await PostgresStore.open({ url: pg.url, poolSize: 2, dim, modelId: 'bench', hnsw: { m, efConstruction, efSearch: 64 }, log: () => undefined });
    t = performance.now();
    const labelOf = new Map<number, number>(); // pg label → row number (1-based), the exact index's label
    for (let s = 0; s < n; s += INSERT_CHUNK) {
      const part = vectors.slice(s, s + INSERT_CHUNK).map((v, i) => ({ id: `v${s + i + 1}`, metadata: {}, sha256: null, modelId: 'bench', vector: v }));
      const written = await store.transaction((tx) => tx.upsertMany(part));
      written.forEach((w, i) => labelOf.set(w.item.label, s + i + 1));
      if (s % 20_000 === 0) log.info({ inserted: s }, 'pg insert');
    }
    const pgBuild = (performance.now() - t) / 1000;
    const pgSweep = await sweep(queries, truth, async (q, ef) => (await store.search(q, K, { ef })).map((r) => labelOf.get(r.label)!));
    await store.close();
    return {
      n,
      dim,
      m,
      efConstruction,
      queries: nq,
      hnswlib: { buildSeconds: +hnswBuild.toFixed(1), insertsPerS: Math.round(n / hnswBuild), sweep: hnswSweep },
      pgvector: { buildSeconds: +pgBuild.toFixed(1), insertsPerS: Math.round(n / pgBuild), sweep: pgSweep },
    };
  } finally {
    await pg.stop();
  }
}

/** Seconds for `replicas` servers on one fresh database to ingest `images` images submitted to the first. */
async function ingest(replicas: number, images: number): Promise<{ replicas: number; images: number; seconds: number; imagesPerS: number }> {
  const pg = await startPostgres();
  const root = tempDir('likeness-bench-pg-');
  const fixtures = fmnistFixtures();
  const lines: string[] = [];
  for (let i = 0; i < images; i++) lines.push(JSON.stringify({ path: fixtures[i % fixtures.length].file, id: `img-${i}` }));
  const manifest = path.join(root, 'manifest.jsonl');
  fs.writeFileSync(manifest, lines.join('\n'));
  const env = {
    LIKENESS_STORE: pg.url,
    LIKENESS_MODEL: SHIPPED_MODEL,
    LIKENESS_INGEST_ROOTS: root + ',' + path.dirname(path.dirname(fixtures[0].file)),
    LIKENESS_DUPLICATES: 'keep',
    LIKENESS_WORKERS: '1',
    LIKENESS_PG_POOL_SIZE: '4',
  };
  const servers: ChildServer[] = [];
  try {
    for (let r = 0; r < replicas; r++) {
      const s = spawnServer(env);
      await s.up();
      servers.push(s);
    }
    const t = performance.now();
    const res = await fetch(`${servers[0].base}/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: { type: 'manifest', path: manifest } }) });
    const { job } = (await res.json()) as { job: { id: string } };
    for (;;) {
      const j = ((await (await fetch(`${servers[0].base}/v1/jobs/${job.id}`)).json()) as { job: { status: string; added: number } }).job;
      if (j.status === 'done' || j.status === 'failed') {
        if (j.added !== images) throw new Error(`ingest added ${j.added} of ${images}`);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const seconds = (performance.now() - t) / 1000;
    return { replicas, images, seconds: +seconds.toFixed(1), imagesPerS: Math.round(images / seconds) };
  } finally {
    for (const s of servers) await s.stop('SIGKILL');
    await pg.stop();
  }
}

async function main(): Promise<void> {
  const n = Number(arg('n', 'BENCH_N', '100000'));
  const dim = Number(arg('dim', 'BENCH_DIM', '64'));
  const m = Number(arg('m', 'BENCH_M', '16'));
  const efConstruction = Number(arg('ef-construction', 'BENCH_EF_CONSTRUCTION', '64'));
  const nq = Number(arg('queries', 'BENCH_QUERIES', '200'));
  const images = Number(arg('images', 'BENCH_IMAGES', '2000'));
  const search = await vectorSearch(n, dim, m, efConstruction, nq);
  const one = images > 0 ? await ingest(1, images) : undefined;
  const two = images > 0 ? await ingest(2, images) : undefined;
  console.log(
    JSON.stringify({
      bench: 'pg-vs-hnsw',
      machine: `${os.cpus().length} cores ${os.cpus()[0]?.model ?? ''}`.trim(),
      database: 'PGlite 0.5 (PostgreSQL 18, wasm) + pgvector 0.8.7 over the wire protocol, loopback',
      ...search,
      ingest: one && two ? { model: path.basename(SHIPPED_MODEL), one, two, speedup: +(two.imagesPerS / one.imagesPerS).toFixed(2) } : undefined,
    }),
  );
}

void main();
