import request from 'supertest';
import sharp from 'sharp';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { Fixture, fmnistFixtures, photo, tempDir, testConfig } from '../helpers';

/** One server over the 100 Fashion-MNIST fixtures and a colour photo, shared by the tests below. */
interface RouterLayer {
  route?: { path: string; methods: Record<string, boolean> };
  handle: { stack?: RouterLayer[] };
}

/** 'GET /v1/items/{id}' for each route of an Express app's router, nested routers included (HEAD is implied by GET). */
function routesOf(stack: RouterLayer[]): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const p = layer.route.path.replace(/:(\w+)/g, '{$1}');
      return Object.keys(layer.route.methods).filter((m) => m !== '_all' && m !== 'head').map((m) => `${m.toUpperCase()} ${p}`);
    }
    return layer.handle.stack ? routesOf(layer.handle.stack) : [];
  });
}

describe('HTTP API', () => {
  let srv: RunningServer;
  let dataDir: string;
  const fixtures = fmnistFixtures();
  const api = () => request(srv.server);

  const add = (f: Pick<Fixture, 'id' | 'bytes'>, metadata: Record<string, unknown>) =>
    api().post('/v1/items').field('id', f.id).field('metadata', JSON.stringify(metadata)).attach('image', f.bytes, 'x.png');

  beforeAll(async () => {
    dataDir = tempDir();
    srv = await startServer(testConfig(dataDir));
    for (const f of fixtures) {
      const res = await add(f, { folder: f.folder, n: Number(/test-(\d+)/.exec(f.id)![1]) });
      expect(res.status).toBe(201);
    }
    const cat = await add({ id: 'photo/cat', bytes: photo('chelsea.jpg') }, { folder: 'photo' });
    expect(cat.status).toBe(201);
    expect(cat.headers.location).toBe('/v1/items/photo%2Fcat'); // ids with '/' are one path segment
  });
  afterAll(() => srv?.stop());

  it('finds an indexed image first, by its own bytes, with score > 0.999', async () => {
    for (const f of [fixtures[0], fixtures[37], fixtures[99]]) {
      const res = await api().post('/v1/search').attach('image', f.bytes, 'q.png').field('k', '5');
      expect(res.status).toBe(200);
      expect(res.body.results[0].id).toBe(f.id);
      expect(res.body.results[0].score).toBeGreaterThan(0.999);
      expect(res.body.results[0].metadata.folder).toBe(f.folder);
      expect(res.body.results).toHaveLength(5);
      expect(res.body.timing.totalMs).toBeGreaterThan(0);
    }
    // Multipart parameters may also come in the query string.
    const viaQuery = await api().post('/v1/search').query({ k: 3 }).attach('image', fixtures[0].bytes, 'q.png');
    expect(viaQuery.body.results).toHaveLength(3);
    const cat = await api().post('/v1/search').set('content-type', 'image/jpeg').send(photo('chelsea.jpg'));
    expect(cat.body.results[0].id).toBe('photo/cat');
  });

  it('search by vector and by id agree with search by image', async () => {
    const f = fixtures[12];
    const byImage = await api().post('/v1/search').attach('image', f.bytes, 'q.png').field('k', '10');
    const byId = await api().post('/v1/search').send({ id: f.id, k: 10 });
    expect(byId.status).toBe(200);
    expect(byId.body.results.map((r: { id: string }) => r.id)).toEqual(byImage.body.results.map((r: { id: string }) => r.id));
    // The stored vector, scaled by 3: search normalises client vectors.
    const item = await api().get(`/v1/items/${encodeURIComponent(f.id)}`).query({ vector: 'true' });
    expect(item.body.item.vector).toHaveLength(128);
    const byVector = await api()
      .post('/v1/search')
      .send({ vector: item.body.item.vector.map((x: number) => 3 * x), k: 10 });
    expect(byVector.status).toBe(200);
    expect(byVector.body.results.map((r: { id: string }) => r.id)).toEqual(byImage.body.results.map((r: { id: string }) => r.id));
    byVector.body.results.forEach((r: { score: number }, i: number) => expect(r.score).toBeCloseTo(byImage.body.results[i].score, 4));
  });

  it('applies k, minScore and metadata filters', async () => {
    const f = fixtures[25];
    const filtered = await api().post('/v1/search').send({ id: f.id, k: 20, filter: { folder: 'sneaker' } });
    expect(filtered.status).toBe(200);
    expect(filtered.body.results.length).toBeGreaterThan(0);
    expect(filtered.body.results.every((r: { metadata: { folder: string } }) => r.metadata.folder === 'sneaker')).toBe(true);
    const numeric = await api().post('/v1/search').send({ id: f.id, k: 5, filter: { n: Number(/test-(\d+)/.exec(f.id)![1]) } });
    expect(numeric.body.results.map((r: { id: string }) => r.id)).toEqual([f.id]);
    const strict = await api().post('/v1/search').send({ id: f.id, k: 50, minScore: 0.99999 });
    expect(strict.body.results.every((r: { score: number }) => r.score >= 0.99999)).toBe(true);
    const form = await api().post('/v1/search').attach('image', f.bytes, 'q.png').field('k', '3').field('filter', JSON.stringify({ folder: 'bag' }));
    expect(form.body.results).toHaveLength(3);
    expect(form.body.results.every((r: { metadata: { folder: string } }) => r.metadata.folder === 'bag')).toBe(true);
  });

  it('gets, pages, replaces and deletes items', async () => {
    const got = await api().get(`/v1/items/${encodeURIComponent(fixtures[3].id)}`);
    expect(got.status).toBe(200);
    expect(got.body.item).toMatchObject({ id: fixtures[3].id, metadata: { folder: fixtures[3].folder } });
    expect(got.body.item.sha256).toMatch(/^[0-9a-f]{64}$/);

    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await api().get('/v1/items').query(cursor ? { limit: 30, cursor } : { limit: 30 });
      expect(page.status).toBe(200);
      ids.push(...page.body.items.map((i: { id: string }) => i.id));
      cursor = page.body.next;
    } while (cursor);
    expect(new Set(ids).size).toBe(fixtures.length + 1);

    // Re-adding an id replaces it: the old image no longer finds it first, the new one does.
    const target = 'replace-me';
    expect((await add({ id: target, bytes: photo('coffee.jpg') }, { v: 1 })).status).toBe(201);
    const replaced = await add({ id: target, bytes: photo('rocket.jpg') }, { v: 2 });
    expect(replaced.status).toBe(200);
    expect(replaced.body.replaced).toBe(true);
    const byRocket = await api().post('/v1/search').set('content-type', 'image/jpeg').send(photo('rocket.jpg'));
    expect(byRocket.body.results[0]).toMatchObject({ id: target, metadata: { v: 2 } });
    const byCoffee = await api().post('/v1/search').set('content-type', 'image/jpeg').query({ k: 200 }).send(photo('coffee.jpg'));
    expect(byCoffee.body.results.filter((r: { id: string }) => r.id === target)).toHaveLength(1);

    expect((await api().delete(`/v1/items/${target}`)).status).toBe(204);
    expect((await api().delete(`/v1/items/${target}`)).status).toBe(404);
    expect((await api().get(`/v1/items/${target}`)).body.error.code).toBe('ITEM_NOT_FOUND');
    const after = await api().post('/v1/search').set('content-type', 'image/jpeg').query({ k: 200 }).send(photo('rocket.jpg'));
    expect(after.body.results.map((r: { id: string }) => r.id)).not.toContain(target);
  });

  // Bad and hostile input: test/server/hostile-inputs.test.ts.

  it('accepts unicode ids', async () => {
    const id = 'catalogue/été/👟 sneaker #1';
    expect((await add({ id, bytes: fixtures[70].bytes }, {})).status).toBe(201);
    const res = await api().get(`/v1/items/${encodeURIComponent(id)}`);
    expect(res.body.item.id).toBe(id);
  });

  it('reports health, metrics and the OpenAPI document', async () => {
    const health = await api().get('/healthz');
    expect(health.body).toMatchObject({ status: 'ok', backend: 'wasm', model: { name: 'random-mini', dim: 128 } });
    expect(health.body.items).toBe(health.body.indexed);
    // CI builds the oneDNN addon (.ci/run), and --conv-kernels auto then uses it
    expect(health.body.convolutions).toMatch(process.env.CI ? /^oneDNN \d+\.\d+/ : /^(oneDNN \d+\.\d+|wasm$)/);
    const metrics = await api().get('/metrics');
    expect(metrics.text).toMatch(/likeness_http_request_duration_seconds_bucket\{/);
    expect(metrics.text).toMatch(/likeness_embed_batch_size_count \d+/);
    expect(metrics.text).toMatch(new RegExp(`likeness_index_size ${health.body.indexed}`));
    const doc = await api().get('/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    // Every route the server answers is described, with each of its methods.
    const app = srv.server.listeners('request').find((l) => 'router' in l) as unknown as { router: { stack: RouterLayer[] } };
    const described = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).filter((m) => m !== 'parameters').map((m) => `${m.toUpperCase()} ${p}`));
    // Exactly: the document is also the table a 405's Allow header comes from.
    expect(described.sort()).toEqual(routesOf(app.router.stack).sort());
    expect(routesOf(app.router.stack).length).toBeGreaterThanOrEqual(18);
  });

  it('answers a wrong method on a real path with 405 and the methods that work', async () => {
    const put = await api().put('/v1/search').send({ id: fixtures[0].id });
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('POST');
    expect(put.body.error).toMatchObject({ code: 'METHOD_NOT_ALLOWED', message: expect.stringContaining('PUT is not allowed') });
    const item = await api().put(`/v1/items/${encodeURIComponent('any/id')}`);
    expect(item.status).toBe(405);
    expect(item.headers.allow).toBe('GET, PATCH, DELETE, HEAD');
    expect((await api().delete('/v1/jobs')).headers.allow).toBe('GET, HEAD');
    expect((await api().put('/v1/search/')).headers.allow).toBe('POST'); // routed as /v1/search, so 405 too
    // Each allowed method really is routed (not 404/405), so the header never lists one that fails.
    expect((await api().delete(`/v1/items/no-such-item`)).body.error.code).toBe('ITEM_NOT_FOUND');
    // Unknown paths stay 404, and case still matters.
    expect((await api().put('/v1/nothing')).status).toBe(404);
    expect((await api().get('/V1/items')).status).toBe(404);
    expect((await api().post('/v1/items/x/duplicates/more')).status).toBe(404);
  });

  it('rejects uploads over the byte limit with 413', async () => {
    const small = await startServer(testConfig(tempDir(), { maxUploadBytes: 10_000 }));
    try {
      const big = await sharp(photo('astronaut.png')).png().toBuffer();
      const res = await request(small.server).post('/v1/search').attach('image', big, 'big.png');
      expect(res.status).toBe(413);
      expect(res.body.error.code).toBe('UPLOAD_TOO_LARGE');
      const raw = await request(small.server).post('/v1/search').set('content-type', 'image/png').send(big);
      expect(raw.status).toBe(413);
      const bomb = await request(small.server).post('/v1/search').send({ id: 'x'.repeat(300_000) });
      expect(bomb.status).toBe(413);
    } finally {
      await small.stop();
    }
  });
});
