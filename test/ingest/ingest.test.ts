import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { DEMO_CATALOG } from '../../src/config/config';
import { sourceError } from '../../src/ingest/sources';
import { listTar } from '../../src/ingest/tar';
import { fmnistFixtures, photo, randomPort, spawnServer, tempDir, testConfig } from '../helpers';

const fixtures = fmnistFixtures();

async function waitForJob(srv: RunningServer, id: string): Promise<Record<string, any>> {
  for (;;) {
    const { body } = await request(srv.server).get(`/v1/jobs/${id}`);
    if (body.job.status === 'done' || body.job.status === 'failed') return body.job;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A catalogue folder like a user's: 40 Fashion-MNIST PNGs in class folders, 2 colour photos, 2 exact
 * copies under other names, 1 near-duplicate (a product image re-encoded as JPEG), 3 broken files.
 */
async function messyFolder(): Promise<string> {
  const root = tempDir('likeness-ingest-');
  for (const f of fixtures.filter((_, i) => i % 10 < 4)) {
    fs.mkdirSync(path.join(root, f.folder), { recursive: true });
    fs.copyFileSync(f.file, path.join(root, f.id));
  }
  fs.mkdirSync(path.join(root, 'photos/copies'), { recursive: true });
  fs.writeFileSync(path.join(root, 'photos/cat.jpg'), photo('chelsea.jpg'));
  fs.writeFileSync(path.join(root, 'photos/coffee.jpg'), photo('coffee.jpg'));
  fs.writeFileSync(path.join(root, 'photos/copies/cat-copy.jpg'), photo('chelsea.jpg'));
  fs.copyFileSync(fixtures[0].file, path.join(root, 'photos/copies/tshirt-copy.png'));
  fs.writeFileSync(path.join(root, 'photos/boot-near.jpg'), await sharp(fixtures[0].bytes).jpeg({ quality: 90 }).toBuffer());
  fs.writeFileSync(path.join(root, 'photos/truncated.jpg'), photo('coffee.jpg').subarray(0, 3000));
  fs.writeFileSync(path.join(root, 'photos/not-an-image.png'), 'this is text, not a PNG');
  fs.writeFileSync(path.join(root, 'photos/empty.gif'), Buffer.alloc(0));
  return root;
}

describe('ingest jobs', () => {
  let srv: RunningServer;
  let root: string;
  let outside: string;

  beforeAll(async () => {
    root = await messyFolder();
    outside = tempDir('likeness-outside-');
    fs.copyFileSync(fixtures[5].file, path.join(outside, 'secret.png'));
    srv = await startServer(testConfig(tempDir(), { ingestRoots: [root], ingestChunk: 8 }));
  });
  afterAll(() => srv?.stop());

  it('ingests a messy folder with the right counts and a per-item failure report', async () => {
    const res = await request(srv.server).post('/v1/ingest').send({ source: { type: 'folder', path: root } });
    expect(res.status).toBe(202);
    expect(res.body.job.total).toBe(48);
    const job = await waitForJob(srv, res.body.job.id);
    expect(job).toMatchObject({ status: 'done', total: 48, done: 48, added: 43, duplicates: 2, failed: 3, etaSeconds: 0 });
    expect(job.imagesPerSecond).toBeGreaterThan(0);

    const report = (await request(srv.server).get(`/v1/jobs/${job.id}/failures`)).body.items;
    const byId = Object.fromEntries(report.map((r: any) => [r.id, r]));
    expect(byId['photos/truncated.jpg']).toMatchObject({ state: 'failed', code: 'CORRUPT_IMAGE' });
    expect(byId['photos/not-an-image.png']).toMatchObject({ state: 'failed', code: 'NOT_AN_IMAGE' });
    expect(byId['photos/empty.gif']).toMatchObject({ state: 'failed', code: 'EMPTY_IMAGE' });
    expect(byId['photos/copies/cat-copy.jpg']).toMatchObject({ state: 'duplicate', duplicateOf: 'photos/cat.jpg' });
    expect(byId['photos/copies/tshirt-copy.png']).toMatchObject({ state: 'duplicate', duplicateOf: fixtures[0].id });
    const page = await request(srv.server).get(`/v1/jobs/${job.id}/failures`).query({ limit: 2 });
    expect(page.body.items).toEqual(report.slice(0, 2));
    expect((await request(srv.server).get(`/v1/jobs/${job.id}/failures`).query({ cursor: page.body.next })).body.items).toEqual(report.slice(2));
    // Keys are 32-bit in every store: a cursor past that is malformed (PostgreSQL would refuse it).
    const far = await request(srv.server).get(`/v1/jobs/${job.id}/failures`).query({ cursor: '9999999999' });
    expect([far.status, far.body.error.code]).toEqual([400, 'BAD_CURSOR']);

    // Running the same source again re-embeds nothing.
    const again = await request(srv.server).post('/v1/ingest').send({ source: { type: 'folder', path: root } });
    expect(await waitForJob(srv, again.body.job.id)).toMatchObject({ status: 'done', added: 0, unchanged: 43, duplicates: 2, failed: 3 });
  });

  it('finds near and exact duplicates, and says when an image is already in the catalogue', async () => {
    // The test model has random weights, so unrelated images also score high: a tight threshold.
    const boot = encodeURIComponent(fixtures[0].id);
    const dup = await request(srv.server).get(`/v1/items/${boot}/duplicates`).query({ threshold: 0.9995 });
    expect(dup.status).toBe(200);
    expect(dup.body.near.map((h: any) => h.id)).toEqual(['photos/boot-near.jpg']);
    expect(dup.body.exact).toEqual([]); // its byte-identical copy was skipped at ingest

    const search = await request(srv.server).post('/v1/search').set('content-type', 'image/jpeg').send(photo('chelsea.jpg'));
    expect(search.body.exactMatches).toEqual(['photos/cat.jpg']);
    const fresh = await request(srv.server).post('/v1/search').set('content-type', 'image/jpeg').send(photo('rocket.jpg'));
    expect(fresh.body.exactMatches).toEqual([]);

    // Catalogue-wide groups, paged: each group once, anchored at its oldest member.
    const groups: string[][] = [];
    let cursor: string | undefined;
    do {
      const page = await request(srv.server).post('/v1/duplicates').send({ threshold: 0.9995, limit: 10, ...(cursor ? { cursor } : {}) });
      expect(page.status).toBe(200);
      groups.push(...page.body.groups.map((g: any) => g.ids));
      cursor = page.body.next;
    } while (cursor);
    expect(groups).toContainEqual([fixtures[0].id, 'photos/boot-near.jpg']);
    expect(groups.filter((g) => g.includes('photos/boot-near.jpg'))).toHaveLength(1);
    expect((await request(srv.server).post('/v1/duplicates').send({ threshold: 2 })).body.error.code).toBe('BAD_THRESHOLD');
  });

  it('ingests manifests (CSV and JSONL) with metadata columns, and tar archives', async () => {
    const csv = ['path,id,brand,price', ...fixtures.slice(50, 55).map((f, i) => `${path.relative(root, f.file)},csv-${i},"acme, inc",${10 + i}`)].join('\n');
    // Manifest paths are relative to the manifest: put copies inside the root.
    fs.mkdirSync(path.join(root, 'm'), { recursive: true });
    fixtures.slice(50, 55).forEach((f) => fs.copyFileSync(f.file, path.join(root, 'm', path.basename(f.file))));
    fs.writeFileSync(path.join(root, 'm/items.csv'), csv.replace(/^(?!path)[^,]*\//gm, ''));
    const jsonl = fixtures.slice(55, 58).map((f, i) => JSON.stringify({ path: path.basename(f.file), id: `jsonl-${i}`, colour: 'blue' }));
    fixtures.slice(55, 58).forEach((f) => fs.copyFileSync(f.file, path.join(root, 'm', path.basename(f.file))));
    fs.writeFileSync(path.join(root, 'm/items.jsonl'), jsonl.join('\n') + '\n');

    for (const [file, expected] of [['items.csv', 5], ['items.jsonl', 3]] as const) {
      const res = await request(srv.server).post('/v1/ingest').send({ source: { type: 'manifest', path: path.join(root, 'm', file) }, duplicates: 'keep' });
      expect(res.status).toBe(202);
      expect(await waitForJob(srv, res.body.job.id)).toMatchObject({ status: 'done', added: expected, failed: 0 });
    }
    const before = (await request(srv.server).get('/v1/items/csv-2').query({ vector: 'true' })).body.item;
    expect(before.metadata).toEqual({ brand: 'acme, inc', price: '12' });
    // The same manifest again with one price changed: that item's metadata is updated, the others unchanged.
    fs.writeFileSync(path.join(root, 'm/items.csv'), fs.readFileSync(path.join(root, 'm/items.csv'), 'utf8').replace(/,csv-2,"acme, inc",12/, ',csv-2,"acme, inc",13'));
    const rerun = await request(srv.server).post('/v1/ingest').send({ source: { type: 'manifest', path: path.join(root, 'm', 'items.csv') }, duplicates: 'keep' });
    expect(await waitForJob(srv, rerun.body.job.id)).toMatchObject({ status: 'done', added: 1, unchanged: 4, failed: 0 });
    const after = (await request(srv.server).get('/v1/items/csv-2').query({ vector: 'true' })).body.item;
    expect(after.metadata).toEqual({ brand: 'acme, inc', price: '13' });
    // Updated in place, not stored again: same vector, same creation time (a replaced item gets a new one).
    expect(after).toMatchObject({ sha256: before.sha256, createdAt: before.createdAt, vector: before.vector });
    expect((await request(srv.server).post('/v1/search').send({ id: 'csv-2', k: 1, filter: { price: '13' } })).body.results[0].id).toBe('csv-2');
    expect((await request(srv.server).get('/v1/items/jsonl-1')).body.item.metadata).toEqual({ colour: 'blue' });

    // A metadata-only row whose item is replaced by other bytes between read and write is not applied to them.
    const { service, store } = srv.likeness;
    const prepared = await service.prepareMany([{ key: 1, id: 'csv-3', image: fs.readFileSync(fixtures[53].file), metadata: { brand: 'acme, inc', price: '99' } }], 'keep');
    expect(prepared[0]).toMatchObject({ metadataOnly: true });
    await service.addItem({ id: 'csv-3', image: fixtures[60].bytes, metadata: { brand: 'other' } });
    await store.transaction((tx) => service.commitPrepared(tx, prepared, 'keep'));
    expect(prepared[0].outcome).toMatchObject({ state: 'failed', code: 'CHANGED_DURING_INGEST' });
    expect((await request(srv.server).get('/v1/items/csv-3')).body.item.metadata).toEqual({ brand: 'other' });

    const tarFile = path.join(root, 'archive.tar');
    execFileSync('tar', ['-cf', tarFile, '-C', DEMO_CATALOG, 'bag', 'coat']);
    const entries = (await listTar(tarFile)).filter((e) => e.name.endsWith('.png'));
    expect(entries).toHaveLength(80);
    const res = await request(srv.server).post('/v1/ingest').send({ source: { type: 'tar', path: tarFile } });
    expect(await waitForJob(srv, res.body.job.id)).toMatchObject({ status: 'done', total: 80, added: 80, failed: 0 });
    const first = entries[0];
    const same = await request(srv.server).post('/v1/search').set('content-type', 'image/png').send(fs.readFileSync(path.join(DEMO_CATALOG, first.name)));
    expect(same.body.results[0].id).toBe(first.name);
  });

  it('refuses paths outside the allowed roots, through .. and through symlinks', async () => {
    const attempts = [
      { type: 'folder', path: outside },
      { type: 'folder', path: path.join(root, '..', path.basename(outside)) },
      { type: 'manifest', path: '/etc/passwd' },
    ];
    fs.symlinkSync(outside, path.join(root, 'escape'));
    attempts.push({ type: 'folder', path: path.join(root, 'escape') });
    const manifest = path.join(root, 'evil.csv');
    fs.writeFileSync(manifest, `path,id\n../${path.basename(outside)}/secret.png,evil\n`);
    fs.symlinkSync(outside, path.join(path.dirname(root), `${path.basename(root)}-sibling`), 'dir');
    attempts.push({ type: 'manifest', path: manifest });
    for (const source of attempts) {
      const res = await request(srv.server).post('/v1/ingest').send({ source });
      expect({ source, status: res.status, code: res.body.error?.code }).toEqual({ source, status: 403, code: 'PATH_NOT_ALLOWED' });
    }
    const missing = await request(srv.server).post('/v1/ingest').send({ source: { type: 'folder', path: path.join(root, 'nope') } });
    expect(missing.body.error.code).toBe('SOURCE_NOT_FOUND');
    const bad = await request(srv.server).post('/v1/ingest').send({ source: { type: 'zip', path: root } });
    expect(bad.status).toBe(400);
    expect((await request(srv.server).get('/v1/items/evil')).status).toBe(404);
  });

  it('checks the files of a client job against the roots again when it reads them', async () => {
    // A job planned while its files were plain files inside the root; before it runs, one becomes a
    // symlink to a file outside (a drop folder others can write to), one a symlink within the root.
    const dir = path.join(root, 'swapped');
    fs.mkdirSync(dir);
    for (const name of ['out.png', 'in.png']) fs.copyFileSync(fixtures[7].file, path.join(dir, name));
    const planned = ['out.png', 'in.png'].map((name, i) => ({ id: `swapped-${name}`, path: path.join(dir, name), offset: null, size: null, metadata: { i } }));
    const { store, ingest } = srv.likeness;
    const job = await store.jobs.create({ type: 'folder', path: dir }, { duplicates: 'keep', confined: true }, planned);
    fs.rmSync(path.join(dir, 'out.png'));
    fs.symlinkSync(path.join(outside, 'secret.png'), path.join(dir, 'out.png'));
    fs.rmSync(path.join(dir, 'in.png'));
    fs.symlinkSync(path.join(root, fixtures[1].id), path.join(dir, 'in.png'));
    await ingest.resumeUnfinished();
    expect(await waitForJob(srv, job.id)).toMatchObject({ status: 'done', added: 1, failed: 1 });
    const report = (await request(srv.server).get(`/v1/jobs/${job.id}/failures`)).body.items;
    expect(report).toEqual([expect.objectContaining({ id: 'swapped-out.png', state: 'failed', code: 'PATH_NOT_ALLOWED' })]);
    expect((await request(srv.server).get('/v1/items/swapped-out.png')).status).toBe(404);
    expect((await request(srv.server).get('/v1/items/swapped-in.png')).status).toBe(200);
  });

  it('says which file it may not read, as a client error', () => {
    let err: unknown;
    try {
      fs.readdirSync(fixtures[0].file); // a real errno error: ENOTDIR
    } catch (e) {
      err = e;
    }
    expect(sourceError(err)).toMatchObject({ status: 400, code: 'BAD_SOURCE', message: expect.stringContaining(fixtures[0].file) });
    const denied = Object.assign(new Error('EACCES'), { code: 'EACCES', syscall: 'scandir', path: '/srv/photos/lost+found' });
    expect(sourceError(denied)).toMatchObject({ status: 403, code: 'SOURCE_UNREADABLE' });
    const other = new RangeError('not from the filesystem');
    expect(sourceError(other)).toBe(other);
  });

  it('links exact duplicates to the existing item when asked, keeping them out of the index', async () => {
    const dir = path.join(root, 'linked');
    fs.mkdirSync(dir);
    const bytes = fixtures[76].bytes;
    for (const name of ['a-orig.png', 'b-copy.png', 'c-copy.png']) fs.writeFileSync(path.join(dir, name), bytes);
    fs.copyFileSync(fixtures[77].file, path.join(dir, 'd-other.png'));
    // An item already stored under an id that the ingest will link: it leaves the index.
    const put = await request(srv.server).post('/v1/items').field('id', 'c-copy.png').attach('image', fixtures[78].bytes, 'x.png');
    expect(put.status).toBe(201);
    const before = (await request(srv.server).get('/healthz')).body;

    const res = await request(srv.server).post('/v1/ingest').send({ source: { type: 'folder', path: dir }, duplicates: 'link' });
    expect(await waitForJob(srv, res.body.job.id)).toMatchObject({ status: 'done', total: 4, added: 2, duplicates: 2, failed: 0 });
    const after = (await request(srv.server).get('/healthz')).body;
    // +2 items (a-orig, d-other), −1 item turned alias (c-copy); aliases have no vectors of their own.
    expect(after.items - before.items).toBe(1);
    expect(after.indexed - before.indexed).toBe(1);
    expect(after.aliases - before.aliases).toBe(2);

    const alias = (await request(srv.server).get('/v1/items/b-copy.png')).body.item;
    expect(alias).toMatchObject({ id: 'b-copy.png', aliasOf: 'a-orig.png', sha256: expect.any(String) });
    const orig = (await request(srv.server).get('/v1/items/a-orig.png')).body.item;
    expect(orig.aliases).toEqual(['b-copy.png', 'c-copy.png']);

    const byImage = await request(srv.server).post('/v1/search').set('content-type', 'image/png').send(bytes);
    expect(byImage.body.results[0]).toMatchObject({ id: 'a-orig.png', aliases: ['b-copy.png', 'c-copy.png'] });
    expect(byImage.body.results.map((h: any) => h.id)).not.toContain('b-copy.png');
    expect(byImage.body.exactMatches).toEqual(['a-orig.png', 'b-copy.png', 'c-copy.png']);
    const byAlias = await request(srv.server).post('/v1/search').send({ id: 'b-copy.png', k: 1 });
    expect(byAlias.body.results[0].id).toBe('a-orig.png');
    const dups = await request(srv.server).get('/v1/items/b-copy.png/duplicates').query({ threshold: 0.9995 });
    expect(dups.body.exact).toEqual(['a-orig.png', 'c-copy.png']);

    // Re-running re-embeds nothing and links nothing twice.
    const again = await request(srv.server).post('/v1/ingest').send({ source: { type: 'folder', path: dir }, duplicates: 'link' });
    expect(await waitForJob(srv, again.body.job.id)).toMatchObject({ status: 'done', added: 0, unchanged: 4, duplicates: 0 });

    // Deleting an alias removes only it; deleting the item removes its remaining aliases.
    expect((await request(srv.server).delete('/v1/items/c-copy.png')).status).toBe(204);
    expect((await request(srv.server).get('/v1/items/c-copy.png')).status).toBe(404);
    expect((await request(srv.server).get('/v1/items/a-orig.png')).body.item.aliases).toEqual(['b-copy.png']);
    expect((await request(srv.server).delete('/v1/items/a-orig.png')).status).toBe(204);
    expect((await request(srv.server).get('/v1/items/b-copy.png')).body.error.code).toBe('ITEM_NOT_FOUND');
  });
});

describe('ingest after kill -9', () => {
  it('cancels a running job after the chunk in progress, keeps what it stored, and does not resume it', async () => {
    const dataDir = tempDir();
    const config = testConfig(dataDir, { ingestRoots: [DEMO_CATALOG], ingestChunk: 8, duplicates: 'keep' });
    let srv = await startServer(config);
    try {
      const api = () => request(srv.server);
      const created = await api().post('/v1/ingest').send({ source: { type: 'folder', path: DEMO_CATALOG } });
      const id = created.body.job.id;
      while ((await api().get(`/v1/jobs/${id}`)).body.job.done < 16) await new Promise((r) => setTimeout(r, 5));
      const cancelled = await api().post(`/v1/jobs/${id}/cancel`);
      expect(cancelled.status).toBe(200);
      expect(cancelled.body.job).toMatchObject({ id, status: 'cancelled', total: 400, finishedAt: expect.any(String) });
      await srv.likeness.ingest.whenIdle();
      const job = (await api().get(`/v1/jobs/${id}`)).body.job;
      // Stopped within two chunks of the request (the one being stored, the one read ahead is dropped).
      expect(job.status).toBe('cancelled');
      expect(job.done).toBeGreaterThanOrEqual(16);
      expect(job.done).toBeLessThanOrEqual(cancelled.body.job.done + 16);
      expect(job.done).toBeLessThan(400);
      expect(job.added).toBe(job.done);
      expect((await api().get('/healthz')).body).toMatchObject({ items: job.added, indexed: job.added });
      // Cancelling again answers the same; a finished job and an unknown one are refused.
      expect((await api().post(`/v1/jobs/${id}/cancel`)).body.job.status).toBe('cancelled');
      const small = tempDir('likeness-cancel-done-');
      fs.copyFileSync(fixtures[0].file, path.join(small, 'one.png'));
      const done = await srv.likeness.ingest.submit({ type: 'folder', path: small }, { duplicates: 'keep' }, true);
      await srv.likeness.ingest.whenIdle();
      const late = await api().post(`/v1/jobs/${done.id}/cancel`);
      expect(late.status).toBe(409);
      expect(late.body.error).toMatchObject({ code: 'JOB_FINISHED', details: { status: 'done' } });
      expect((await api().get(`/v1/jobs/${done.id}`)).body.job.status).toBe('done');
      expect((await api().post('/v1/jobs/00000000-0000-4000-8000-000000000000/cancel')).body.error.code).toBe('JOB_NOT_FOUND');

      // A restart resumes unfinished jobs, but not a cancelled one.
      await srv.stop();
      srv = await startServer(config);
      await srv.likeness.ingest.whenIdle();
      expect((await api().get(`/v1/jobs/${id}`)).body.job).toMatchObject({ status: 'cancelled', done: job.done });
      expect((await api().get('/healthz')).body.items).toBe(job.added + 1);
    } finally {
      await srv.stop();
    }
  });

  it('cancels a queued job before it reads anything', async () => {
    const config = testConfig(tempDir(), { ingestRoots: [DEMO_CATALOG], duplicates: 'keep' });
    const srv = await startServer(config);
    try {
      // One job at a time: the second waits in the queue behind the first.
      const first = await srv.likeness.ingest.submit({ type: 'folder', path: DEMO_CATALOG }, { duplicates: 'keep' }, true);
      const second = await srv.likeness.ingest.submit({ type: 'folder', path: path.join(DEMO_CATALOG, 'bag') }, { duplicates: 'keep' }, true);
      const res = await request(srv.server).post(`/v1/jobs/${second.id}/cancel`);
      expect(res.body.job).toMatchObject({ status: 'cancelled', startedAt: null, done: 0 });
      await srv.likeness.ingest.whenIdle();
      expect(await srv.likeness.ingest.view(first.id)).toMatchObject({ status: 'done', added: 400 });
      expect(await srv.likeness.ingest.view(second.id)).toMatchObject({ status: 'cancelled', startedAt: null, done: 0 });
    } finally {
      await srv.stop();
    }
  });

  it('resumes the job on restart and finishes with every image present exactly once', async () => {
    const env = { LIKENESS_DATA_DIR: tempDir(), LIKENESS_WORKERS: '1', LIKENESS_INGEST_ROOTS: DEMO_CATALOG, LIKENESS_INGEST_CHUNK: '16', LIKENESS_DUPLICATES: 'keep' };
    const port = randomPort();
    let srv = spawnServer(env, port);
    const get = async (p: string): Promise<any> => (await fetch(`${srv.base}${p}`)).json();
    await srv.up();
    const created: any = await (
      await fetch(`${srv.base}/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: { type: 'folder', path: DEMO_CATALOG } }) })
    ).json();
    const id = created.job.id;
    while ((await get(`/v1/jobs/${id}`)).job.done < 48) await new Promise((r) => setTimeout(r, 20));
    await srv.stop('SIGKILL');

    srv = spawnServer(env, port);
    try {
      await srv.up();
      let job;
      for (;;) {
        job = (await get(`/v1/jobs/${id}`)).job;
        if (job.status === 'done') break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(job).toMatchObject({ total: 400, added: 400, unchanged: 0, failed: 0 });
      const ids: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await get(`/v1/items?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
        ids.push(...page.items.map((i: any) => i.id));
        cursor = page.next;
      } while (cursor);
      expect(ids).toHaveLength(400);
      expect(new Set(ids).size).toBe(400);
      expect(await get('/healthz')).toMatchObject({ items: 400, indexed: 400 });
    } finally {
      await srv.stop();
    }
  });
});
