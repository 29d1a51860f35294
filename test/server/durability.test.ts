/**
 * What survives: restarts, a corrupt or truncated index snapshot, a model change, and kill -9 in the
 * middle of adds (test/server/crash.test.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { INDEX_FILE, SNAPSHOT_FILE } from '../../src/index/index-store';
import { fmnistFixtures, tempDir, testConfig } from '../helpers';

const fixtures = fmnistFixtures();

async function addAll(srv: RunningServer, items = fixtures): Promise<void> {
  for (const f of items) {
    const res = await request(srv.server).post('/v1/items').field('id', f.id).attach('image', f.bytes, 'x.png');
    expect(res.status).toBe(201);
  }
}

async function topIds(srv: RunningServer, queries = fixtures.slice(0, 10)): Promise<string[][]> {
  const out: string[][] = [];
  for (const q of queries) {
    const res = await request(srv.server).post('/v1/search').attach('image', q.bytes, 'q.png').field('k', '5');
    out.push(res.body.results.map((r: { id: string }) => r.id));
  }
  return out;
}

describe('durability', () => {
  it('a restart keeps every item and gives the same results (snapshot + replay)', async () => {
    const dir = tempDir();
    // snapshotEvery 30: the last snapshot covers some adds and replay brings back the rest.
    let srv = await startServer(testConfig(dir, { snapshotEvery: 30 }));
    await addAll(srv);
    await request(srv.server).delete(`/v1/items/${encodeURIComponent(fixtures[1].id)}`).expect(204);
    const before = await topIds(srv);
    // Simulate a crash after the last automatic snapshot: close the catalogue without the shutdown snapshot.
    srv.server.close();
    await srv.likeness.embedder.close();
    srv.likeness.embedded!.catalog.close();
    srv.likeness.embedded!.lock!.release(); // the operating system drops a dead process's lock

    srv = await startServer(testConfig(dir, { snapshotEvery: 30 }));
    try {
      expect(srv.likeness.embedded!.index.outcome).toBe('loaded');
      const health = (await request(srv.server).get('/healthz')).body;
      expect(health.items).toBe(fixtures.length - 1);
      expect(health.indexed).toBe(fixtures.length - 1);
      expect(await topIds(srv)).toEqual(before);
    } finally {
      await srv.stop();
    }
  });

  it('a snapshot holding deletions is loaded, not rebuilt, and the deleted items stay gone', async () => {
    const dir = tempDir();
    let srv = await startServer(testConfig(dir, { snapshotEvery: 0 }));
    await addAll(srv);
    for (const f of fixtures.slice(0, 3)) await request(srv.server).delete(`/v1/items/${encodeURIComponent(f.id)}`).expect(204);
    const before = await topIds(srv);
    await srv.stop(); // the shutdown snapshot covers the deletions
    srv = await startServer(testConfig(dir, { snapshotEvery: 0 }));
    try {
      expect(srv.likeness.embedded!.index.outcome).toBe('loaded');
      expect(srv.likeness.embedded!.index.size()).toBe(fixtures.length - 3);
      expect(await topIds(srv)).toEqual(before);
    } finally {
      await srv.stop();
    }
  });

  it.each([
    ['a truncated index file', (file: string) => fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2))],
    ['a corrupted index file', (file: string) => {
      const buf = fs.readFileSync(file);
      for (let i = 100; i < buf.length; i += 1000) buf[i] ^= 0xff;
      fs.writeFileSync(file, buf);
    }],
    ['a deleted index file', (file: string) => fs.rmSync(file)],
    ['an unreadable snapshot.json', (file: string) => fs.writeFileSync(path.join(path.dirname(file), SNAPSHOT_FILE), '{"modelId": tru')],
    ['an index file with one byte changed', (file: string) => {
      const buf = fs.readFileSync(file);
      buf.writeUInt32LE(buf.readUInt32LE(buf.length - 8) ^ 1, buf.length - 8); // one changed byte: checksum mismatch
      fs.writeFileSync(file, buf);
    }],
  ])('%s is detected and rebuilt from the catalogue', async (_name, damage) => {
    const dir = tempDir();
    let srv = await startServer(testConfig(dir));
    await addAll(srv, fixtures.slice(0, 40));
    const before = await topIds(srv, fixtures.slice(0, 5));
    await srv.stop();
    damage(path.join(dir, 'index', INDEX_FILE));
    srv = await startServer(testConfig(dir));
    try {
      expect(srv.likeness.embedded!.index.outcome).toBe('rebuilt');
      expect(srv.likeness.embedded!.index.size()).toBe(40);
      expect(await topIds(srv, fixtures.slice(0, 5))).toEqual(before);
    } finally {
      await srv.stop();
    }
  });

  it('an index built by another model is rebuilt, and that model\'s vectors are not served', async () => {
    const dir = tempDir();
    let srv = await startServer(testConfig(dir));
    await addAll(srv, fixtures.slice(0, 10));
    await srv.stop();
    const info = JSON.parse(fs.readFileSync(path.join(dir, 'index', SNAPSHOT_FILE), 'utf8'));
    fs.writeFileSync(path.join(dir, 'index', SNAPSHOT_FILE), JSON.stringify({ ...info, modelId: 'other-model@000000000000' }));
    srv = await startServer(testConfig(dir));
    try {
      expect(srv.likeness.embedded!.index.outcome).toBe('rebuilt');
      expect(srv.likeness.embedded!.index.reason).toMatch(/other-model/);
    } finally {
      await srv.stop();
    }
  });
  // kill -9 during adds, deletes and ingest: test/server/crash.test.ts.
});
