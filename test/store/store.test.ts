/**
 * The Store interface itself, against both implementations; then what only a shared database does:
 * two stores (two replicas) splitting one job through leases, and reconnecting after a restart.
 */
import { Client } from 'pg';
import { createLogger } from '../../src/cli/logger';
import type { NewItem } from '../../src/catalog/catalog';
import { openStore } from '../../src/catalog/open';
import { PostgresStore } from '../../src/catalog/postgres/pg-store';
import type { PlannedItem } from '../../src/catalog/jobs';
import { toIndexChange } from '../../src/catalog/store';
import type { Store } from '../../src/catalog/store';
import { normalize } from '../../src/index/vector-index';
import { tempDir, testConfig } from '../helpers';
import { startPostgres, TestPostgres } from './pg-server';

const DIM = 16;
const MODEL = 'model@1';
const log = createLogger('silent');

/** Seeded unit vectors (LCG): the same catalogue for both stores. */
function vectors(count: number, seed = 7): Float32Array[] {
  let s = seed;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  return Array.from({ length: count }, () => normalize(Array.from({ length: DIM }, rnd)));
}

const item = (id: string, vector: Float32Array, metadata: Record<string, unknown> = {}): NewItem => ({ id, metadata, sha256: `sha-${id}`, modelId: MODEL, vector });
const plan = (count: number): PlannedItem[] => Array.from({ length: count }, (_, i) => ({ id: `img-${i}`, path: `/x/${i}.png`, offset: null, size: null, metadata: { i } }));

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
});
afterAll(() => pg?.stop());

const pgConfig = (over: Record<string, unknown> = {}) => testConfig(tempDir(), { store: pg.url, pgPoolSize: 3, ...over });

describe.each([
  ['embedded', () => openStore(testConfig(tempDir()), log, DIM, MODEL)],
  ['postgres', () => openStore(pgConfig(), log, DIM, MODEL)],
])('Store: %s', (_name, open) => {
  let store: Store;
  beforeAll(async () => {
    store = await open();
  });
  afterAll(() => store?.close());

  it('adds, replaces with a new label, deletes, and counts changes', async () => {
    const [a, b] = vectors(2, 1);
    const first = await store.upsert(item('a', a, { colour: 'red' }));
    expect(first.replacedLabel).toBeUndefined();
    const again = await store.upsert(item('a', b, { colour: 'blue' }));
    expect(again.replacedLabel).toBe(first.item.label);
    expect(again.item.label).toBeGreaterThan(first.item.label);
    expect(Array.from((await store.getById('a'))!.vector)).toEqual(Array.from(b));
    expect((await store.getByLabels([again.item.label, first.item.label])).size).toBe(1);
    expect(await store.idsBySha256('sha-a', 5)).toEqual(['a']);
    expect(await store.delete('a')).toEqual({ aliases: 0 });
    expect(await store.delete('a')).toBeUndefined();
    expect(await store.getById('a')).toBeUndefined();
    expect(await store.stats(MODEL)).toMatchObject({ items: 0, itemsForModel: 0, indexed: 0, seq: 3 });
  });

  it('keeps filtered searches at k results when the filter is rare', async () => {
    const vs = vectors(3000);
    await store.transaction(
      (tx) => tx.upsertMany(vs.map((v, i) => item(`v${i}`, v, { shard: i % 100, odd: i % 2 === 1 }))),
      (written) => written.map(toIndexChange),
    );
    // The embedded index defers changes that arrive while it writes a snapshot (every 1000 changes).
    for (let i = 0; i < 100 && (await store.stats(MODEL)).indexed < 3000; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await store.stats(MODEL)).indexed).toBe(3000);
    const q = vs[5];
    const top = await store.search(q, 10);
    expect(top).toHaveLength(10);
    expect((await store.getByLabels([top[0].label])).get(top[0].label)!.id).toBe('v5');
    // 1% of the items pass: a plain HNSW scan of ef=64 candidates would keep about one of them.
    const rare = await store.search(q, 10, { filter: { shard: 37 } });
    expect(rare).toHaveLength(10);
    const got = await store.getByLabels(rare.map((r) => r.label));
    for (const r of rare) expect(got.get(r.label)!.metadata.shard).toBe(37);
    for (let i = 1; i < rare.length; i++) expect(rare[i].score).toBeLessThanOrEqual(rare[i - 1].score);
    expect(await store.search(q, 10, { filter: { shard: 37, odd: true } })).toHaveLength(10);
    await expect(store.search(q, 10, { filter: { 'a b': 1 } })).rejects.toMatchObject({ code: 'BAD_FILTER' });
  });

  it('iterates the served model in label order and rolls back a failed transaction', async () => {
    let count = 0;
    let last = 0;
    for await (const chunk of store.itemsOf(MODEL, 700)) {
      for (const it of chunk) {
        expect(it.label).toBeGreaterThan(last);
        last = it.label;
        count++;
      }
    }
    expect(count).toBe(3000);
    const before = await store.stats(MODEL);
    await expect(
      store.transaction(async (tx) => {
        await tx.upsertMany([item('doomed', vectors(1, 3)[0])]);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.getById('doomed')).toBeUndefined();
    expect((await store.stats(MODEL)).items).toBe(before.items);
  });

  it('hands out each job item once, records outcomes once, and finishes the job', async () => {
    const job = await store.jobs.create({ type: 'folder', path: '/x' }, { duplicates: 'keep' }, plan(10));
    const a = await store.jobs.claim(job.id, 'r1', 4, 60_000);
    const b = await store.jobs.claim(job.id, 'r1', 4, 60_000);
    expect(a.map((i) => i.seq)).toEqual([1, 2, 3, 4]);
    expect(b.map((i) => i.seq)).toEqual([5, 6, 7, 8]);
    expect(a[0]).toMatchObject({ id: 'img-0', path: '/x/0.png', metadata: { i: 0 } });
    await store.transaction(async (tx) => {
      const held = await tx.holdLeases(job.id, 'r1', [1, 2, 3, 4]);
      expect([...held].sort()).toEqual([1, 2, 3, 4]);
      await tx.recordOutcomes(job.id, 'r1', [
        { seq: 1, state: 'added' },
        { seq: 2, state: 'added' },
        { seq: 3, state: 'duplicate', duplicateOf: 'img-0' },
        { seq: 4, state: 'failed', code: 'NOT_AN_IMAGE', message: 'x' },
      ]);
    });
    expect(await store.jobs.finishIfComplete(job.id)).toBe(false);
    await store.jobs.release(job.id, 'r1');
    const rest = await store.jobs.claim(job.id, 'r1', 100, 60_000);
    expect(rest.map((i) => i.seq)).toEqual([5, 6, 7, 8, 9, 10]);
    await store.transaction((tx) => tx.recordOutcomes(job.id, 'r1', rest.map((i) => ({ seq: i.seq, state: 'unchanged' as const }))));
    expect(await store.jobs.finishIfComplete(job.id)).toBe(true);
    expect(await store.jobs.get(job.id)).toMatchObject({ status: 'done', total: 10, added: 2, duplicates: 1, failed: 1, unchanged: 6 });
    expect((await store.jobs.report(job.id, 0, 10)).map((r) => [r.seq, r.state, r.code ?? r.duplicateOf])).toEqual([
      [3, 'duplicate', 'img-0'],
      [4, 'failed', 'NOT_AN_IMAGE'],
    ]);
    expect(await store.jobs.unfinished()).toEqual([]);
  });
});

describe('embedded store: one process per data dir', () => {
  it('refuses a second opener of the same data dir at once, with what to do, until the first closes', async () => {
    const config = testConfig(tempDir());
    const first = await openStore(config, log, DIM, MODEL);
    try {
      const t0 = performance.now();
      await expect(openStore(config, log, DIM, MODEL)).rejects.toThrow(/in use by another likeness process.*POST \/v1\/search/);
      expect(performance.now() - t0).toBeLessThan(2000); // no waiting on a busy timeout
      await first.upsert(item('kept', vectors(1, 5)[0]));
    } finally {
      await first.close();
    }
    const second = await openStore(config, log, DIM, MODEL);
    expect(await second.getById('kept')).toBeDefined();
    await second.close();
  });
});

describe('embedded store: index and catalogue in step', () => {
  it('applies a bulk write to the index before the next write commits: the index holds a prefix of the committed changes', async () => {
    const store = await openStore(testConfig(tempDir()), log, DIM, MODEL);
    try {
      const bulk = store.transaction(
        (tx) => tx.upsertMany(vectors(300, 11).map((v, i) => item(`bulk-${i}`, v))),
        (written) => written.map(toIndexChange),
      );
      // Both queue behind the bulk write while it commits; the bulk's 300 inserts yield to the event loop.
      const added = store.upsert(item('after', vectors(1, 12)[0])).then(() => store.stats(MODEL));
      const deleted = store.delete('bulk-0').then(() => store.stats(MODEL));
      const label0 = (await bulk)[0].item.label;
      expect((await added).indexed).toBe(301);
      // Deleting an item whose insert was not yet in the index would leave it there for good.
      expect(await deleted).toMatchObject({ items: 300, indexed: 300 });
      expect((await store.search(vectors(300, 11)[0], 5)).map((n) => n.label)).not.toContain(label0);
    } finally {
      await store.close();
    }
  });
});

describe('PostgreSQL store shared by two replicas', () => {
  let r1: Store;
  let r2: Store;
  beforeAll(async () => {
    // A fresh database for this block: the replicas open it concurrently, so migrations race.
    await pg.stop();
    pg = await startPostgres();
    [r1, r2] = await Promise.all([openStore(pgConfig(), log, DIM, MODEL), openStore(pgConfig(), log, DIM, MODEL)]);
  });
  afterAll(async () => {
    await r1?.close();
    await r2?.close();
  });

  it('each sees the other’s writes at once', async () => {
    const [v] = vectors(1, 11);
    await r1.upsert(item('from-r1', v, { by: 1 }));
    expect((await r2.getById('from-r1'))?.metadata).toEqual({ by: 1 });
    expect((await r2.search(v, 1))[0].label).toBe((await r1.getById('from-r1'))!.label);
    await r2.delete('from-r1');
    expect(await r1.getById('from-r1')).toBeUndefined();
  });

  it('split one job through leases; a dead replica’s batch is reclaimed after its lease expires', async () => {
    const job = await r1.jobs.create({ type: 'folder', path: '/x' }, { duplicates: 'keep' }, plan(12));
    const c1 = await r1.jobs.claim(job.id, 'replica-1', 4, 60_000);
    const c2 = await r2.jobs.claim(job.id, 'replica-2', 4, 60_000);
    const dying = await r2.jobs.claim(job.id, 'replica-dead', 4, 300); // its owner "dies" now
    expect(new Set([...c1, ...c2, ...dying].map((i) => i.seq)).size).toBe(12);
    expect(await r1.jobs.claim(job.id, 'replica-1', 4, 60_000)).toEqual([]); // nothing free yet
    const write = (s: Store, owner: string, keys: number[]) =>
      s.transaction(async (tx) => {
        const held = await tx.holdLeases(job.id, owner, keys);
        await tx.recordOutcomes(job.id, owner, [...held].map((seq) => ({ seq, state: 'added' as const })));
        return held.size;
      });
    expect(await write(r1, 'replica-1', c1.map((i) => i.seq))).toBe(4);
    expect(await write(r2, 'replica-2', c2.map((i) => i.seq))).toBe(4);
    expect(await r1.jobs.finishIfComplete(job.id)).toBe(false);
    await new Promise((r) => setTimeout(r, 400));
    const reclaimed = await r1.jobs.claim(job.id, 'replica-1', 10, 60_000);
    expect(reclaimed.map((i) => i.seq)).toEqual(dying.map((i) => i.seq));
    // The dead replica comes back late: its lease is gone, so it writes nothing.
    expect(await write(r2, 'replica-dead', dying.map((i) => i.seq))).toBe(0);
    expect(await write(r1, 'replica-1', reclaimed.map((i) => i.seq))).toBe(4);
    expect(await r2.jobs.finishIfComplete(job.id)).toBe(true);
    expect(await r2.jobs.get(job.id)).toMatchObject({ status: 'done', added: 12, failed: 0 });
  });

  it('reconnects after the database restarts', async () => {
    const [v] = vectors(1, 12);
    await r1.upsert(item('before-restart', v));
    await pg.restart();
    expect((await r1.getById('before-restart'))?.id).toBe('before-restart');
    await pg.restart();
    await r1.upsert(item('after-restart', v));
    expect((await r2.search(v, 2)).length).toBe(2);
  });

  it('refuses a model of another dimension and a database migrated by a newer build', async () => {
    await expect(openStore(pgConfig(), log, DIM + 1, MODEL)).rejects.toThrow(/stores 16-dimensional vectors and this model makes 17: use a new database for this model/);
    const admin = new Client({ connectionString: pg.url });
    await admin.connect();
    await admin.query(`INSERT INTO likeness_migrations (version, name) VALUES (99, 'from the future')`);
    await expect(PostgresStore.open({ url: pg.url, poolSize: 1, dim: DIM, modelId: MODEL, hnsw: { m: 16, efConstruction: 64, efSearch: 40 }, log: () => undefined })).rejects.toThrow(
      /schema is at version 99/,
    );
    await admin.query('DELETE FROM likeness_migrations WHERE version = 99');
    await admin.end();
  });
});
