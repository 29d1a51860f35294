/** API keys, scopes, open reads, rate limits, request deadlines and security headers. */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { appendKey, generateKey, hashKey, KeyRing, readKeysFile, requiredScope } from '../../src/server/auth';
import { RateLimiter } from '../../src/server/rate-limit';
import { fmnistFixtures, tempDir, testConfig } from '../helpers';

const png = fmnistFixtures()[0].bytes;

describe('RateLimiter', () => {
  it('allows a burst, then one request per 1/rate seconds, and says how long to wait', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    const rate = { perSecond: 2, burst: 3 };
    expect([1, 2, 3].map(() => limiter.take('a', rate))).toEqual([0, 0, 0]);
    expect(limiter.take('a', rate)).toBeCloseTo(0.5);
    expect(limiter.take('b', rate)).toBe(0); // buckets are per key
    now += 500;
    expect(limiter.take('a', rate)).toBe(0);
    expect(limiter.take('a', rate)).toBeGreaterThan(0);
    expect(limiter.take('a', { perSecond: 0, burst: 1 })).toBe(0); // 0 = unlimited
  });

  it('forgets idle buckets instead of growing without bound', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    for (let i = 0; i < 10_000; i++) limiter.take(`addr:${i}`, { perSecond: 10, burst: 10 });
    now += 2000;
    limiter.take('new', { perSecond: 10, burst: 10 });
    expect(limiter.size).toBeLessThan(10);
  });
});

describe('keys', () => {
  it('stores only hashes, finds keys by hash and rejects malformed files with the line number', () => {
    const file = path.join(tempDir(), 'keys.jsonl');
    const key = generateKey();
    expect(key).toMatch(/^lk_[A-Za-z0-9_-]{43}$/);
    appendKey(file, { name: 'app', sha256: hashKey(key), scopes: ['read'] });
    expect(fs.readFileSync(file, 'utf8')).not.toContain(key);
    expect(fs.statSync(file).mode & 0o077).toBe(0);
    const ring = KeyRing.fromFile(file);
    expect(ring.find(key)?.name).toBe('app');
    expect(ring.find(key + 'x')).toBeUndefined();
    expect(() => appendKey(file, { name: 'app', sha256: hashKey('y'), scopes: ['write'] })).toThrow(/already exists/);
    fs.appendFileSync(file, '{"name":"bad","sha256":"zz","scopes":["read"]}\n');
    expect(() => readKeysFile(file)).toThrow(/keys.jsonl:2: sha256/);
  });

  it.each([
    ['POST', '/v1/search', 'read'],
    ['GET', '/v1/items/x', 'read'],
    ['GET', '/v1/jobs/3', 'read'],
    ['POST', '/v1/duplicates', 'read'],
    ['GET', '/metrics', 'read'],
    ['POST', '/v1/items', 'write'],
    ['DELETE', '/v1/items/x', 'write'],
    ['POST', '/v1/ingest', 'write'],
    ['POST', '/v1/eval', 'write'],
    ['GET', '/v1/eval/ann-recall', 'write'],
    ['PUT', '/v1/anything', 'write'],
    ['GET', '/healthz', 'public'],
    ['GET', '/openapi.json', 'public'],
    ['GET', '/', 'public'],
    ['GET', '/app.js', 'public'],
    ['GET', '/report/index.html', 'read'],
    ['GET', '/v1', 'read'],
    ['GET', '/V1/items', 'read'],
    ['GET', '/Metrics', 'read'],
    ['GET', '/V1/Eval/ann-recall', 'write'],
    ['POST', '/', 'write'],
  ])('%s %s needs %s', (method, p, scope) => expect(requiredScope(method, p)).toBe(scope));
});

describe('authenticated server', () => {
  let srv: RunningServer;
  let open: RunningServer;
  const keys = { reader: generateKey(), writer: generateKey(), both: generateKey(), slow: generateKey() };

  beforeAll(async () => {
    const dir = tempDir();
    const file = path.join(dir, 'keys.jsonl');
    appendKey(file, { name: 'reader', sha256: hashKey(keys.reader), scopes: ['read'] });
    appendKey(file, { name: 'writer', sha256: hashKey(keys.writer), scopes: ['write'] });
    appendKey(file, { name: 'both', sha256: hashKey(keys.both), scopes: ['read', 'write'] });
    appendKey(file, { name: 'slow', sha256: hashKey(keys.slow), scopes: ['read'], rateLimit: 0.5, burst: 2 });
    srv = await startServer(testConfig(path.join(dir, 'a'), { apiKeysFile: file, rateLimit: 1000, rateBurst: 1000 }));
    open = await startServer(testConfig(path.join(dir, 'b'), { apiKeysFile: file, openRead: true, rateLimit: 1, rateBurst: 3 }));
    await request(srv.server).post('/v1/items').set('authorization', `Bearer ${keys.writer}`).field('id', 'a').attach('image', png, 'a.png').expect(201);
  });
  afterAll(async () => {
    await srv?.stop();
    await open?.stop();
  });

  it('refuses requests without a valid key (401) or without the scope (403); public routes stay public', async () => {
    const api = () => request(srv.server);
    const noKey = await api().post('/v1/search').send({ id: 'a' });
    expect([noKey.status, noKey.body.error.code, noKey.headers['www-authenticate']]).toEqual([401, 'UNAUTHENTICATED', 'Bearer']);
    const wrong = await api().post('/v1/search').set('authorization', `Bearer ${generateKey()}`).send({ id: 'a' });
    expect([wrong.status, wrong.body.error.code]).toEqual([401, 'UNAUTHENTICATED']);
    const malformed = await api().post('/v1/search').set('authorization', 'Basic Zm9vOmJhcg==').send({ id: 'a' });
    expect(malformed.status).toBe(401);
    expect((await api().post('/v1/search').set('authorization', `Bearer ${keys.reader}`).send({ id: 'a' })).status).toBe(200);
    expect((await api().post('/v1/search').set('x-api-key', keys.both).send({ id: 'a' })).status).toBe(200);
    const readerAdds = await api().post('/v1/items').set('authorization', `Bearer ${keys.reader}`).field('id', 'b').attach('image', png, 'a.png');
    expect([readerAdds.status, readerAdds.body.error.code]).toEqual([403, 'FORBIDDEN_SCOPE']);
    const writerSearches = await api().post('/v1/search').set('authorization', `Bearer ${keys.writer}`).send({ id: 'a' });
    expect([writerSearches.status, writerSearches.body.error.code]).toEqual([403, 'FORBIDDEN_SCOPE']);
    expect((await api().delete('/v1/items/a').set('authorization', `Bearer ${keys.reader}`)).status).toBe(403);
    expect((await api().post('/v1/eval').set('authorization', `Bearer ${keys.reader}`).send({ labelField: 'x' })).status).toBe(403);
    expect((await api().get('/metrics')).status).toBe(401);
    expect((await api().get('/metrics').set('authorization', `Bearer ${keys.reader}`)).status).toBe(200);
    expect((await api().get('/healthz')).status).toBe(200);
    expect((await api().get('/openapi.json')).status).toBe(200);
    // A refused upload is refused before its body is read: the item does not exist.
    expect((await api().get('/v1/items/b').set('authorization', `Bearer ${keys.reader}`)).status).toBe(404);
  });

  it.each(['/V1/items/a', '/V1/items?limit=10', '/Metrics', '//v1/items/a', '/v1//items/a', '/%76%31/items/a', '/V1/eval/ann-recall'])(
    'a path spelt differently (%s) is neither public nor served without a key',
    async (p) => {
      const res = await request(srv.server).get(p);
      expect(res.status).not.toBe(200);
      expect([401, 404]).toContain(res.status);
      expect(JSON.stringify(res.body)).not.toContain('"id":"a"');
    },
  );

  it('limits each key: 429 with Retry-After past the burst, other keys unaffected', async () => {
    const api = () => request(srv.server);
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < 4; i++) {
      const res = await api().get('/v1/items/a').set('authorization', `Bearer ${keys.slow}`);
      statuses.push(res.status);
      if (res.status === 429) {
        retryAfter = res.headers['retry-after'];
        expect(res.body.error.code).toBe('RATE_LIMITED');
      }
    }
    expect(statuses).toEqual([200, 200, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect((await api().get('/v1/items/a').set('authorization', `Bearer ${keys.reader}`)).status).toBe(200);
  });

  it('with open reads, searches need no key (limited per address) but writes still do', async () => {
    const api = () => request(open.server);
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await api().get('/v1/items?limit=1')).status);
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses[4]).toBe(429);
    const add = await api().post('/v1/items').field('id', 'x').attach('image', png, 'a.png');
    expect([add.status, add.body.error.code]).toEqual([401, 'UNAUTHENTICATED']);
  });

  it('sends security headers and no x-powered-by', async () => {
    const res = await request(srv.server).get('/healthz');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(res.headers['x-powered-by']).toBeUndefined();
  });
});

describe('overload', () => {
  it('a full embed queue answers 503 EMBED_QUEUE_FULL with Retry-After, then recovers', async () => {
    const srv = await startServer(testConfig(tempDir(), { maxQueue: 2, batchWaitMs: 50 }));
    try {
      const results = await Promise.all(Array.from({ length: 24 }, () => request(srv.server).post('/v1/search').set('content-type', 'image/png').send(png)));
      const busy = results.filter((r) => r.status === 503);
      expect(busy.length).toBeGreaterThan(0);
      expect(busy.every((r) => r.body.error.code === 'EMBED_QUEUE_FULL' && r.headers['retry-after'] === '1')).toBe(true);
      expect(results.every((r) => r.status === 200 || r.status === 503)).toBe(true);
      expect((await request(srv.server).get('/healthz')).body.embedQueue).toBe(0);
      expect((await request(srv.server).post('/v1/search').set('content-type', 'image/png').send(png)).status).toBe(200);
    } finally {
      await srv.stop();
    }
  });

  it('answers a request that stalls (a body that never finishes) with 503 REQUEST_TIMEOUT and keeps serving', async () => {
    const srv = await startServer(testConfig(tempDir(), { requestTimeoutSeconds: 0.3 }));
    try {
      const res = await new Promise<{ status: number; body: string; retryAfter?: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: '/v1/search', headers: { 'content-type': 'image/png', 'content-length': String(png.length) } }, (r) => {
          let body = '';
          r.on('data', (c) => (body += c));
          r.on('end', () => {
            resolve({ status: r.statusCode!, body, retryAfter: r.headers['retry-after'] as string });
            req.destroy();
          });
        });
        req.on('error', reject);
        req.write(png.subarray(0, 100)); // and never the rest
      });
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body).error.code).toBe('REQUEST_TIMEOUT');
      expect(res.retryAfter).toBe('1');
      expect((await request(srv.server).get('/healthz')).status).toBe(200);
    } finally {
      await srv.stop();
    }
  });
});
