import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { fmnistFixtures, photo, tempDir, testConfig } from '../helpers';

const thumbUrl = (id: string) => `/v1/items/${encodeURIComponent(id)}/thumbnail`;

async function size(bytes: Buffer): Promise<{ width: number; height: number; format?: string }> {
  const m = await sharp(bytes).metadata();
  return { width: m.width!, height: m.height!, format: m.format };
}

describe('thumbnails and the web page', () => {
  let srv: RunningServer;
  const api = () => request(srv.server);
  const add = (id: string, bytes: Buffer) => api().post('/v1/items').field('id', id).attach('image', bytes, 'x.jpg');
  const imageRows = () => (srv.likeness.embedded!.catalog.database.prepare('SELECT COUNT(*) AS n FROM images').get() as { n: number }).n;

  beforeAll(async () => {
    srv = await startServer(testConfig(tempDir()));
  });
  afterAll(() => srv?.stop());

  it('serves a bounded WebP thumbnail with an ETag, 304 when unchanged, long caching when versioned', async () => {
    expect((await add('cat', photo('chelsea.jpg'))).status).toBe(201);
    const res = await api().get(thumbUrl('cat')).buffer(true);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('image/webp');
    const dims = await size(res.body);
    expect(dims.format).toBe('webp');
    // chelsea.jpg is 451 x 300: fitted inside 128 x 128, aspect kept.
    expect(Math.max(dims.width, dims.height)).toBe(128);
    expect(dims.height).toBeLessThan(128);
    const etag = res.headers.etag;
    const { item } = (await api().get('/v1/items/cat')).body;
    expect(etag).toContain(item.sha256);
    expect(res.headers['cache-control']).toBe('no-cache');

    const again = await api().get(thumbUrl('cat')).set('If-None-Match', etag);
    expect(again.status).toBe(304);
    const versioned = await api().get(thumbUrl('cat')).query({ v: item.sha256 });
    expect(versioned.headers['cache-control']).toMatch(/immutable/);

    // Re-stored with other bytes: another thumbnail, another ETag.
    await add('cat', photo('rocket.jpg'));
    const replaced = await api().get(thumbUrl('cat')).set('If-None-Match', etag);
    expect(replaced.status).toBe(200);
    expect(replaced.headers.etag).not.toBe(etag);
  });

  it('never enlarges small images (28 px Fashion-MNIST stays 28 px)', async () => {
    const f = fmnistFixtures()[0];
    await add(f.id, f.bytes);
    const res = await api().get(thumbUrl(f.id)).buffer(true);
    expect(res.status).toBe(200);
    expect(await size(res.body)).toMatchObject({ width: 28, height: 28 });
    // Already small enough and upright: stored as it came, not re-encoded.
    expect(res.headers['content-type']).toBe('image/png');
    expect(Buffer.compare(res.body, f.bytes)).toBe(0);
  });

  it('answers 404 with a code for unknown ids, items without a thumbnail and originals not kept', async () => {
    const unknown = await api().get(thumbUrl('no such item'));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('ITEM_NOT_FOUND');

    // An item written straight to the catalogue, as before thumbnails were kept.
    await srv.likeness.store.upsert({ id: 'old', metadata: {}, sha256: 'f'.repeat(64), modelId: srv.likeness.embedder.modelId, vector: new Float32Array(128).fill(0.1) });
    const old = await api().get(thumbUrl('old'));
    expect(old.status).toBe(404);
    expect(old.body.error.code).toBe('THUMBNAIL_NOT_FOUND');

    const original = await api().get('/v1/items/cat/original');
    expect(original.status).toBe(404);
    expect(original.body.error.code).toBe('ORIGINAL_NOT_KEPT');
  });

  it('ingest stores thumbnails, and gives one to an unchanged item that had none', async () => {
    const dir = tempDir();
    fs.copyFileSync(path.join(__dirname, '..', 'fixtures', 'photos', 'coffee.jpg'), path.join(dir, 'coffee.jpg'));
    fs.copyFileSync(path.join(__dirname, '..', 'fixtures', 'photos', 'astronaut.png'), path.join(dir, 'astronaut.png'));
    const { embedder, store, ingest } = srv.likeness;
    // coffee.jpg already stored under its id with the same bytes and metadata, but without a thumbnail.
    const bytes = photo('coffee.jpg');
    await store.upsert({ id: 'coffee.jpg', metadata: { path: 'coffee.jpg', folder: '.' }, sha256: createHash('sha256').update(bytes).digest('hex'), modelId: embedder.modelId, vector: await embedder.embedImage(bytes) });
    expect((await api().get(thumbUrl('coffee.jpg'))).status).toBe(404);

    const job = await ingest.submit({ type: 'folder', path: dir }, { duplicates: 'skip' }, true);
    await ingest.whenIdle();
    expect(await ingest.view(job.id)).toMatchObject({ added: 1, unchanged: 1, failed: 0 });
    for (const id of ['coffee.jpg', 'astronaut.png']) {
      const res = await api().get(thumbUrl(id)).buffer(true);
      expect(res.status).toBe(200);
      const { width, height } = await size(res.body);
      expect(Math.max(width, height)).toBeLessThanOrEqual(128);
    }
  });

  it('drops stored images with the last item that refers to them', async () => {
    const before = imageRows();
    await add('twin-a', photo('astronaut.png'));
    await add('twin-b', photo('astronaut.png'));
    // astronaut.png was ingested above, so its bytes already had a row.
    expect(imageRows()).toBe(before);
    await api().delete('/v1/items/astronaut.png').expect(204);
    await api().delete('/v1/items/twin-a').expect(204);
    expect(imageRows()).toBe(before);
    await api().delete('/v1/items/twin-b').expect(204);
    expect(imageRows()).toBe(before - 1);
  });

  it('serves the web page and its files at /', async () => {
    const page = await api().get('/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('<script type="module" src="/app.js">');
    // Scripts only from this origin, and no upgrade to https: the page must work over plain HTTP on a LAN address.
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).not.toContain('upgrade-insecure-requests');
    expect((await api().get('/app.js')).headers['content-type']).toMatch(/javascript/);
    expect((await api().get('/style.css')).headers['content-type']).toMatch(/css/);
    // Unknown paths still get the JSON 404.
    const missing = await api().get('/no-such-page');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('NOT_FOUND');
  });
});

describe('thumbnails with --keep-originals and --thumbnail-size', () => {
  let srv: RunningServer;
  beforeAll(async () => {
    srv = await startServer(testConfig(tempDir(), { keepOriginals: true, thumbnailSize: 64 }));
  });
  afterAll(() => srv?.stop());

  it('keeps the original bytes and honours the thumbnail size', async () => {
    const bytes = photo('chelsea.jpg');
    await request(srv.server).post('/v1/items').field('id', 'cat').attach('image', bytes, 'cat.jpg').expect(201);
    const original = await request(srv.server).get('/v1/items/cat/original').buffer(true);
    expect(original.status).toBe(200);
    expect(original.headers['content-type']).toBe('image/jpeg');
    expect(Buffer.compare(original.body, bytes)).toBe(0);
    expect(original.headers['content-security-policy']).toMatch(/sandbox/);
    const thumb = await request(srv.server).get('/v1/items/cat/thumbnail').buffer(true);
    const { width, height } = await size(thumb.body);
    expect(Math.max(width, height)).toBe(64);
  });
});
