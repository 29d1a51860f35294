/**
 * One contract, two stores: the same HTTP-level tests run unchanged against the embedded store
 * (SQLite + hnswlib) and the PostgreSQL store (pgvector, through `pg` over the wire protocol).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import type { Config } from '../../src/config/config';
import { IngestRunner } from '../../src/ingest/runner';
import { fmnistFixtures, photo, tempDir, testConfig } from '../helpers';
import { startPostgres, TestPostgres } from './pg-server';

const fixtures = fmnistFixtures();
const n = (id: string) => Number(/test-(\d+)/.exec(id)![1]);

interface Backing {
  config(): Partial<Config>;
  stop(): Promise<void>;
}

const stores: Array<[string, () => Promise<Backing>]> = [
  ['embedded', async () => ({ config: () => ({}), stop: async () => undefined })],
  [
    'postgres',
    async () => {
      const pg: TestPostgres = await startPostgres();
      return { config: () => ({ store: pg.url, pgPoolSize: 4 }), stop: () => pg.stop() };
    },
  ],
];

describe.each(stores)('store contract: %s', (_name, backing) => {
  let db: Backing;
  let dataDir: string;
  let srv: RunningServer;
  const api = () => request(srv.server);
  const add = (id: string, bytes: Buffer, metadata: Record<string, unknown>) =>
    api().post('/v1/items').field('id', id).field('metadata', JSON.stringify(metadata)).attach('image', bytes, 'x.png');
  const ids = (res: request.Response) => res.body.results.map((r: { id: string }) => r.id);

  beforeAll(async () => {
    db = await backing();
    dataDir = tempDir();
    srv = await startServer(testConfig(dataDir, db.config()));
    for (const f of fixtures) expect((await add(f.id, f.bytes, { folder: f.folder, n: n(f.id), even: n(f.id) % 2 === 0 })).status).toBe(201);
  });
  afterAll(async () => {
    await srv?.stop();
    await db?.stop();
  });

  it('adds items and finds each by its own image, by vector and by id', async () => {
    const health = await api().get('/healthz');
    expect(health.body).toMatchObject({ items: 100, searchable: 100, indexed: 100 });
    for (const f of [fixtures[0], fixtures[41], fixtures[99]]) {
      const byImage = await api().post('/v1/search').attach('image', f.bytes, 'q.png').field('k', '10');
      expect(byImage.status).toBe(200);
      expect(byImage.body.results[0]).toMatchObject({ id: f.id, metadata: { folder: f.folder } });
      expect(byImage.body.results[0].score).toBeGreaterThan(0.999);
      expect(byImage.body.exactMatches).toEqual([f.id]);
      // A filtered search names no exact match outside its filter (strict equality: 1 is not true).
      const even = n(f.id) % 2 === 0;
      const outside = await api().post('/v1/search').attach('image', f.bytes, 'q.png').field('filter', JSON.stringify({ even: !even }));
      expect(outside.body.exactMatches).toEqual([]);
      expect(ids(outside)).not.toContain(f.id);
      const inside = await api().post('/v1/search').attach('image', f.bytes, 'q.png').field('filter', JSON.stringify({ even, n: n(f.id) }));
      expect(inside.body.exactMatches).toEqual([f.id]);
      expect((await api().post('/v1/search').attach('image', f.bytes, 'q.png').field('filter', JSON.stringify({ n: String(n(f.id)) }))).body.exactMatches).toEqual([]);
      const byId = await api().post('/v1/search').send({ id: f.id, k: 10 });
      const vector = (await api().get(`/v1/items/${encodeURIComponent(f.id)}`).query({ vector: 'true' })).body.item.vector;
      const byVector = await api().post('/v1/search').send({ vector, k: 10 });
      // The top hits agree (HNSW may order near-ties differently only far down the list).
      expect(ids(byId).slice(0, 3)).toEqual(ids(byImage).slice(0, 3));
      expect(ids(byVector).slice(0, 3)).toEqual(ids(byImage).slice(0, 3));
      const scores = byImage.body.results.map((r: { score: number }) => r.score);
      expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    }
  });

  it('filters on metadata and still returns k results', async () => {
    const q = fixtures[25];
    for (const filter of [{ folder: 'sneaker' }, { even: true }, { folder: 'bag', even: false }]) {
      const res = await api().post('/v1/search').send({ id: q.id, k: 5, filter });
      expect(res.status).toBe(200);
      const matching = fixtures.filter((f) => Object.entries(filter).every(([k, v]) => ({ folder: f.folder, even: n(f.id) % 2 === 0 })[k as 'folder'] === v));
      expect(res.body.results).toHaveLength(Math.min(5, matching.length));
      for (const r of res.body.results) expect(r.metadata).toMatchObject(filter);
    }
    // A filter matching one item anywhere in the catalogue still finds it.
    const one = await api().post('/v1/search').send({ id: q.id, k: 10, filter: { n: n(fixtures[77].id), folder: fixtures[77].folder } });
    expect(ids(one)).toEqual([fixtures[77].id]);
    const none = await api().post('/v1/search').send({ id: q.id, k: 10, filter: { folder: 'no-such-folder' } });
    expect(none.body.results).toEqual([]);
    // Equal means equal in JSON type too, in both stores: 1 is not true, true is not 1, "77" is not 77.
    const f77 = fixtures[77];
    for (const filter of [{ even: 1 }, { even: 0 }, { n: String(n(f77.id)) }]) {
      expect({ filter, results: (await api().post('/v1/search').send({ id: q.id, k: 10, filter })).body.results }).toEqual({ filter, results: [] });
    }
    expect(ids(await api().post('/v1/search').send({ id: q.id, k: 10, filter: { n: n(f77.id), even: n(f77.id) % 2 === 0 } }))).toEqual([f77.id]);
    // A field named __proto__ is a filter field like any other (it was dropped, leaving the search unfiltered).
    const proto = await api().post('/v1/search').set('content-type', 'application/json').send(`{"id":"${q.id}","k":10,"filter":{"__proto__":"x"}}`);
    expect(proto.status).toBe(200);
    expect(proto.body.results).toEqual([]);
    const bad = await api().post('/v1/search').send({ id: q.id, filter: { "x') OR 1=1 --": 'y' } });
    expect(bad.body.error.code).toBe('BAD_FILTER');
  });

  it('changes metadata in place with a merge patch, without losing concurrent changes', async () => {
    const f = fixtures[30];
    const url = `/v1/items/${encodeURIComponent(f.id)}`;
    const before = (await api().get(url).query({ vector: 'true' })).body.item;
    const patched = await api().patch(url).send({ metadata: { price: 10, folder: null, dims: { w: 1 } } });
    expect(patched.status).toBe(200);
    expect(patched.body.item.metadata).toEqual({ n: n(f.id), even: n(f.id) % 2 === 0, price: 10, dims: { w: 1 } });
    expect((await api().patch(url).send({ metadata: { dims: { h: 2 } } })).body.item.metadata.dims).toEqual({ w: 1, h: 2 });
    // The image, its vector and its creation time stay; filters see the new metadata at once.
    expect((await api().get(url).query({ vector: 'true' })).body.item).toMatchObject({ sha256: before.sha256, createdAt: before.createdAt, vector: before.vector });
    expect(ids(await api().post('/v1/search').send({ id: f.id, k: 3, filter: { price: 10 } }))).toEqual([f.id]);
    expect(ids(await api().post('/v1/search').send({ id: f.id, k: 100, filter: { folder: f.folder } }))).not.toContain(f.id);

    // Twenty patches at once, each adding its own field: every field arrives (each reads and writes in one transaction).
    const fields = Array.from({ length: 20 }, (_, i) => `f${i}`);
    const all = await Promise.all(fields.map((k) => api().patch(url).send({ metadata: { [k]: k } })));
    expect(all.map((r) => r.status)).toEqual(fields.map(() => 200));
    const merged = (await api().get(url)).body.item.metadata;
    for (const k of fields) expect(merged[k]).toBe(k);

    // A field named __proto__ is a field like any other (not the object's prototype).
    const proto = await api().patch(url).set('content-type', 'application/json').send('{"metadata":{"__proto__":{"x":1}}}');
    expect(JSON.parse(proto.text).item.metadata.__proto__).toEqual({ x: 1 });
    const unset = JSON.parse((await api().patch(url).set('content-type', 'application/json').send('{"metadata":{"__proto__":null}}')).text).item.metadata;
    expect(Object.hasOwn(unset, '__proto__')).toBe(false);

    // Refused: no such id, metadata that is not an object, over the size limit once merged, other fields.
    expect((await api().patch('/v1/items/no-such-item').send({ metadata: { a: 1 } })).body.error.code).toBe('ITEM_NOT_FOUND');
    expect((await api().patch(url).send({ metadata: [1] })).body.error.code).toBe('BAD_METADATA');
    expect((await api().patch(url).send({ metadata: { blob: 'x'.repeat(20_000) } })).body.error.code).toBe('BAD_METADATA');
    expect((await api().patch(url).send({ metadata: { a: 1 }, price: 3 })).body.error.code).toBe('BAD_ITEM');
    expect((await api().patch(url).send({})).body.error).toMatchObject({ code: 'BAD_METADATA', message: 'metadata: must be a JSON object (a merge patch: a field set to null is removed)' });
    expect((await api().patch(url).set('content-type', 'text/plain').send('{"metadata":{}}')).status).toBe(415);
    expect((await api().get(url)).body.item.metadata).toEqual(merged);

    // Back as it was, for the tests after this one.
    const restore = Object.fromEntries([...fields, 'price', 'dims'].map((k) => [k, null]));
    expect((await api().patch(url).send({ metadata: { ...restore, folder: f.folder } })).body.item.metadata).toEqual(before.metadata);
  });

  it('pages through every item once, in insertion order', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await api().get('/v1/items').query(cursor ? { limit: 30, cursor } : { limit: 30 });
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((i: { id: string }) => i.id));
      cursor = page.body.next;
    } while (cursor);
    expect(seen).toEqual(fixtures.map((f) => f.id));
    expect((await api().get('/v1/items').query({ cursor: '!!!' })).body.error.code).toBe('BAD_CURSOR');
  });

  it('replaces and deletes', async () => {
    expect((await add('replace-me', photo('coffee.jpg'), { v: 1 })).status).toBe(201);
    const replaced = await add('replace-me', photo('rocket.jpg'), { v: 2 });
    expect(replaced.status).toBe(200);
    expect(replaced.body.replaced).toBe(true);
    const byRocket = await api().post('/v1/search').set('content-type', 'image/jpeg').send(photo('rocket.jpg'));
    expect(byRocket.body.results[0]).toMatchObject({ id: 'replace-me', metadata: { v: 2 } });
    const byCoffee = await api().post('/v1/search').set('content-type', 'image/jpeg').query({ k: 200 }).send(photo('coffee.jpg'));
    expect(ids(byCoffee).filter((id: string) => id === 'replace-me')).toHaveLength(1);
    expect((await api().delete('/v1/items/replace-me')).status).toBe(204);
    expect((await api().delete('/v1/items/replace-me')).status).toBe(404);
    expect((await api().get('/v1/items/replace-me')).body.error.code).toBe('ITEM_NOT_FOUND');
    const after = await api().post('/v1/search').set('content-type', 'image/jpeg').query({ k: 200 }).send(photo('rocket.jpg'));
    expect(ids(after)).not.toContain('replace-me');
    expect((await api().get('/healthz')).body).toMatchObject({ items: 100, indexed: 100 });
  });

  it('finds exact and near duplicates', async () => {
    const f = fixtures[3];
    expect((await add('copy-of-3', f.bytes, {})).status).toBe(201);
    const dup = await api().get(`/v1/items/${encodeURIComponent(f.id)}/duplicates`).query({ threshold: 0.99 });
    expect(dup.body.exact).toEqual(['copy-of-3']);
    expect(dup.body.near.map((x: { id: string }) => x.id)).toContain('copy-of-3');
    const groups = await api().post('/v1/duplicates').send({ threshold: 0.999, limit: 1000 });
    expect(groups.body.groups).toContainEqual(expect.objectContaining({ ids: expect.arrayContaining([f.id, 'copy-of-3']) }));
    expect((await api().delete('/v1/items/copy-of-3')).status).toBe(204);
  });

  it('runs the quality checks: k-NN and ANN recall against exact search', async () => {
    const evalRes = await api().post('/v1/eval').send({ labelField: 'folder', k: 10 });
    expect(evalRes.status).toBe(200);
    expect(evalRes.body).toMatchObject({ items: 100, queries: 100 });
    expect(evalRes.body.knn.weighted.top1).toBeGreaterThan(0.1);
    const ann = await api().get('/v1/eval/ann-recall').query({ sample: 50, k: 10, ef: '10,40,200' });
    expect(ann.status).toBe(200);
    expect(ann.body.sweep.map((p: { ef: number }) => p.ef)).toEqual([10, 40, 200]);
    expect(ann.body.sweep[2].recall).toBeGreaterThan(0.95);
    for (const p of ann.body.sweep) expect(p.queriesPerSecond).toBeGreaterThan(0);
  });

  it('ingests a folder as a job', async () => {
    const root = tempDir('likeness-contract-ingest-');
    for (const f of fixtures.slice(0, 20)) fs.copyFileSync(f.file, path.join(root, `job-${path.basename(f.file)}-${f.folder}.png`));
    fs.writeFileSync(path.join(root, 'broken.png'), 'not a png');
    const job = await srv.likeness.ingest.submit({ type: 'folder', path: root }, { duplicates: 'keep' }, true);
    await srv.likeness.ingest.whenIdle();
    const done = (await srv.likeness.ingest.view(job.id))!;
    expect(done).toMatchObject({ status: 'done', total: 21, added: 20, failed: 1, done: 21 });
    const report = await api().get(`/v1/jobs/${job.id}/failures`);
    expect(report.body.items).toEqual([expect.objectContaining({ id: 'broken.png', state: 'failed', code: 'NOT_AN_IMAGE' })]);
    for (const f of fixtures.slice(0, 20)) expect((await api().delete(`/v1/items/${encodeURIComponent(`job-${path.basename(f.file)}-${f.folder}.png`)}`)).status).toBe(204);
  });

  it('cancels a queued job: it never starts, is not resumed, and cannot be reopened', async () => {
    const root = tempDir('likeness-contract-cancel-');
    for (const f of fixtures.slice(0, 5)) fs.copyFileSync(f.file, path.join(root, `cancel-${path.basename(f.file)}`));
    const first = await srv.likeness.ingest.submit({ type: 'folder', path: root }, { duplicates: 'keep' }, true);
    await srv.likeness.ingest.whenIdle();
    expect(await srv.likeness.ingest.view(first.id)).toMatchObject({ status: 'done', added: 5 });
    // A job queued in the store by a runner that does not run it (as another replica's submission would be).
    const idle = new IngestRunner(srv.likeness.service, srv.likeness.store, { roots: [], chunk: 8, log: pino({ level: 'silent' }) });
    await idle.stop();
    const second = await idle.submit({ type: 'folder', path: root }, { duplicates: 'keep' }, true);
    expect(second.status).toBe('queued');
    const res = await api().post(`/v1/jobs/${second.id}/cancel`);
    expect(res.status).toBe(200);
    // (A PostgreSQL server's poller may have started it a moment before the cancel: its claim then finds nothing.)
    expect(res.body.job).toMatchObject({ status: 'cancelled', done: 0, finishedAt: expect.any(String) });
    // Ended statuses are final: a replica's late 'running' or 'done' does not relabel the job, even
    // one with nothing left to do (an empty folder's job).
    const empty = await idle.submit({ type: 'folder', path: tempDir('likeness-contract-empty-') }, { duplicates: 'keep' }, true);
    expect((await api().post(`/v1/jobs/${empty.id}/cancel`)).body.job.status).toBe('cancelled');
    expect(await srv.likeness.ingest.jobs.finishIfComplete(empty.id)).toBe(false);
    await srv.likeness.ingest.jobs.setStatus(empty.id, 'running');
    expect(await srv.likeness.ingest.view(empty.id)).toMatchObject({ status: 'cancelled' });
    await srv.likeness.ingest.jobs.setStatus(second.id, 'running');
    expect(await srv.likeness.ingest.jobs.finishIfComplete(second.id)).toBe(false);
    expect(await srv.likeness.ingest.jobs.claim(second.id, 'another-replica', 10, 60_000)).toEqual([]);
    expect(await srv.likeness.ingest.resumeUnfinished()).toBe(0);
    expect(await srv.likeness.ingest.view(second.id)).toMatchObject({ status: 'cancelled', done: 0 });
    const late = await api().post(`/v1/jobs/${first.id}/cancel`);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('JOB_FINISHED');
    for (const f of fixtures.slice(0, 5)) expect((await api().delete(`/v1/items/${encodeURIComponent(`cancel-${path.basename(f.file)}`)}`)).status).toBe(204);
  });

  it('links exact duplicates as aliases during ingest; an alias resolves to its item and goes with it', async () => {
    const root = tempDir('likeness-contract-link-');
    const bytes = photo('astronaut.png');
    for (const name of ['a-orig.png', 'b-copy.png', 'c-copy.png']) fs.writeFileSync(path.join(root, name), bytes);
    // Already an item under an id the ingest will link: it becomes an alias and leaves the index.
    expect((await add('c-copy.png', fixtures[11].bytes, {})).status).toBe(201);
    const ingest = async () => {
      const job = await srv.likeness.ingest.submit({ type: 'folder', path: root }, { duplicates: 'link' }, true);
      await srv.likeness.ingest.whenIdle();
      return srv.likeness.ingest.view(job.id);
    };
    expect(await ingest()).toMatchObject({ status: 'done', total: 3, added: 1, duplicates: 2, failed: 0 });
    expect((await api().get('/healthz')).body).toMatchObject({ items: 101, indexed: 101 });
    expect(await srv.likeness.service.stats()).toMatchObject({ aliases: 2 });

    expect((await api().get('/v1/items/b-copy.png')).body.item).toMatchObject({ id: 'b-copy.png', aliasOf: 'a-orig.png', sha256: expect.any(String) });
    expect((await api().get('/v1/items/a-orig.png')).body.item.aliases).toEqual(['b-copy.png', 'c-copy.png']);
    const byImage = await api().post('/v1/search').set('content-type', 'image/png').send(bytes);
    expect(byImage.body.results[0]).toMatchObject({ id: 'a-orig.png', aliases: ['b-copy.png', 'c-copy.png'] });
    expect(byImage.body.exactMatches).toEqual(['a-orig.png', 'b-copy.png', 'c-copy.png']);
    // An alias passes a filter by its own metadata (folder ingest gave each its own path).
    const aliasOnly = await api().post('/v1/search').attach('image', bytes, 'q.png').field('filter', JSON.stringify({ path: 'b-copy.png' }));
    expect(aliasOnly.body).toMatchObject({ results: [], exactMatches: ['b-copy.png'] });
    expect((await api().post('/v1/search').send({ id: 'b-copy.png', k: 1 })).body.results[0].id).toBe('a-orig.png');
    expect((await api().get('/v1/items/b-copy.png/duplicates').query({ threshold: 0.9995 })).body.exact).toEqual(['a-orig.png', 'c-copy.png']);
    // An alias's metadata is its own to change; its item's stays.
    const aliasPatch = await api().patch('/v1/items/b-copy.png').send({ metadata: { colour: 'red' } });
    expect(aliasPatch.body.item).toMatchObject({ id: 'b-copy.png', aliasOf: 'a-orig.png', metadata: { path: 'b-copy.png', colour: 'red' } });
    expect((await api().get('/v1/items/a-orig.png')).body.item.metadata).not.toHaveProperty('colour');
    expect((await api().patch('/v1/items/b-copy.png').send({ metadata: { colour: null } })).body.item.metadata).not.toHaveProperty('colour');
    // Re-running embeds nothing and links nothing twice.
    expect(await ingest()).toMatchObject({ status: 'done', added: 0, unchanged: 3, duplicates: 0 });

    // Storing an item under an alias's id ends the alias; deleting an item takes its aliases along.
    expect((await add('c-copy.png', fixtures[11].bytes, {})).status).toBe(201);
    expect((await api().get('/v1/items/a-orig.png')).body.item.aliases).toEqual(['b-copy.png']);
    expect((await api().delete('/v1/items/c-copy.png')).status).toBe(204);
    expect((await api().delete('/v1/items/a-orig.png')).status).toBe(204);
    expect((await api().get('/v1/items/b-copy.png')).body.error.code).toBe('ITEM_NOT_FOUND');
    expect((await api().delete('/v1/items/b-copy.png')).status).toBe(404);
    expect((await api().get('/healthz')).body).toMatchObject({ items: 100, indexed: 100 });
    expect(await srv.likeness.service.stats()).toMatchObject({ aliases: 0 });
  });

  it('stores a thumbnail with each item and releases it with the last item of those bytes', async () => {
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const rocket = photo('rocket.jpg');
    const coffee = photo('coffee.jpg');
    const { store } = srv.likeness;
    expect((await add('thumb-a', rocket, {})).status).toBe(201);
    expect((await add('thumb-b', rocket, {})).status).toBe(201);
    const thumb = await api().get('/v1/items/thumb-a/thumbnail').buffer(true);
    expect(thumb.status).toBe(200);
    expect(thumb.headers['content-type']).toMatch(/^image\//);
    expect(thumb.body.length).toBeGreaterThan(100);
    expect(thumb.headers.etag).toBe(`"${sha(rocket)}-thumb"`);
    expect((await api().get('/v1/items/thumb-a/thumbnail').set('If-None-Match', thumb.headers.etag)).status).toBe(304);
    expect((await api().get('/v1/items/thumb-a/original')).body.error.code).toBe('ORIGINAL_NOT_KEPT');
    expect((await api().get('/v1/items/no-such-item/thumbnail')).body.error.code).toBe('ITEM_NOT_FOUND');

    // thumb-b still holds the bytes; replacing it with others releases them.
    expect((await api().delete('/v1/items/thumb-a')).status).toBe(204);
    expect(await store.hasImage(sha(rocket), 'thumbnail')).toBe(true);
    expect((await add('thumb-b', coffee, {})).status).toBe(200);
    expect(await store.hasImage(sha(rocket), 'thumbnail')).toBe(false);
    expect((await api().get('/v1/items/thumb-b/thumbnail')).headers.etag).toBe(`"${sha(coffee)}-thumb"`);
    expect((await api().delete('/v1/items/thumb-b')).status).toBe(204);
    expect(await store.hasImage(sha(coffee), 'thumbnail')).toBe(false);
  });

  it('keeps everything across a restart', async () => {
    const before = await api().post('/v1/search').send({ id: fixtures[60].id, k: 10 });
    await srv.stop();
    srv = await startServer(testConfig(dataDir, db.config()));
    expect((await api().get('/healthz')).body).toMatchObject({ items: 100, searchable: 100, indexed: 100 });
    const after = await api().post('/v1/search').send({ id: fixtures[60].id, k: 10 });
    expect(ids(after)).toEqual(ids(before));
  });
});
