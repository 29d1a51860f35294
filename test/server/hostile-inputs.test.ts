/**
 * The hostile-input corpus (hostile-corpus.ts) against one server per store (embedded SQLite, and
 * PostgreSQL, whose types refuse some bytes SQLite keeps): every input gets its documented status and
 * error code, no response carries a stack trace, and the server answers a normal search after each
 * one. HOSTILE_TABLE=file writes the observed table (docs/RELIABILITY.md is made from it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { fmnistFixtures, tempDir, testConfig } from '../helpers';
import { startPostgres, TestPostgres } from '../store/pg-server';
import { hostileCorpus } from './hostile-corpus';

const MAX_UPLOAD = 4 * 1024 * 1024;

let pg: TestPostgres | undefined;
afterAll(() => pg?.stop());

describe.each([
  ['embedded', async () => ({})],
  ['postgres', async () => ({ store: (pg ??= await startPostgres()).url, pgPoolSize: 3 })],
])('hostile inputs (%s store)', (storeName, storeConfig) => {
  let srv: RunningServer;
  const fixtures = fmnistFixtures().slice(0, 20);
  const root = tempDir('likeness-roots-');
  const ingestRoot = path.join(root, 'allowed');
  const outside = path.join(root, 'outside');

  beforeAll(async () => {
    fs.mkdirSync(ingestRoot);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret.png'), fixtures[0].bytes);
    srv = await startServer(testConfig(tempDir(), { maxUploadBytes: MAX_UPLOAD, decodeTimeoutSeconds: 5, ingestRoots: [ingestRoot], ...(await storeConfig()) }));
    for (const f of fixtures) {
      await request(srv.server).post('/v1/items').field('id', f.id).field('metadata', JSON.stringify({ folder: f.folder })).attach('image', f.bytes, 'x.png').expect(201);
    }
  });
  afterAll(() => srv?.stop());

  it('answers each with its documented status and code, and keeps serving', async () => {
    const cases = await hostileCorpus({ knownId: fixtures[0].id, dim: 128, maxUploadBytes: MAX_UPLOAD, ingestRoot, outside });
    expect(cases.length).toBeGreaterThanOrEqual(30);
    const rows: string[] = [];
    for (const [i, c] of cases.entries()) {
      const res = await c.send(request(srv.server));
      const code = res.body?.error?.code as string | undefined;
      rows.push(`| ${i + 1} | ${c.name.replace(/\|/g, '\\|')} | ${res.status} | ${code ? `\`${code}\`` : '–'} |`);
      expect({ name: c.name, status: res.status, code }).toEqual({ name: c.name, status: c.status, code: c.code });
      expect(res.text ?? '').not.toMatch(/\n\s+at |\.ts:\d+|node_modules/); // no stack traces or paths
      const after = await request(srv.server).post('/v1/search').send({ id: fixtures[1].id, k: 3 });
      expect({ after: c.name, status: after.status }).toEqual({ after: c.name, status: 200 });
    }
    if (process.env.HOSTILE_TABLE && storeName === 'embedded') fs.writeFileSync(process.env.HOSTILE_TABLE, ['| # | input | status | code |', '|---|---|---|---|', ...rows].join('\n') + '\n');

    // Nothing a hostile request did leaked into the catalogue or broke search by image.
    const search = await request(srv.server).post('/v1/search').attach('image', fixtures[5].bytes, 'q.png');
    expect(search.status).toBe(200);
    expect(search.body.results[0].id).toBe(fixtures[5].id);
    const stored = await request(srv.server).get(`/v1/items/${encodeURIComponent('meta-sql')}`);
    expect(stored.body.item.metadata).toEqual({ "a'); DROP TABLE items;--": "' OR 1=1 --" });
    const health = (await request(srv.server).get('/healthz')).body;
    expect(health.items).toBe(fixtures.length + 3); // + the unicode, ../../etc/passwd and SQL-metadata items
    expect(health.indexed).toBe(health.items);
    expect(health.embedQueue).toBe(0);
  });
});
