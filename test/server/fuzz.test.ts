/**
 * Fuzzing the upload and JSON endpoints for a bounded time (FUZZ_SECONDS, default 12): random bytes,
 * mutated valid images of every accepted format, mutated multipart bodies and mutated or random JSON.
 * Every answer must be a 2xx or a 4xx with a JSON error code (never a 5xx, never a stack trace), and
 * the server must still find an indexed image afterwards. FUZZ_SEED reproduces a run;
 * FUZZ_REPORT=file writes the counts (docs/RELIABILITY.md).
 */
import * as fs from 'node:fs';
import sharp from 'sharp';
import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { fmnistFixtures, photo, tempDir, testConfig } from '../helpers';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 12);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);

/** mulberry32: small, seedable. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)] };
}
type Rng = ReturnType<typeof rng>;

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe];

function mutate(r: Rng, input: Buffer): Buffer {
  let b: Buffer = Buffer.from(input);
  const rounds = 1 + r.int(4);
  for (let i = 0; i < rounds && b.length > 0; i++) {
    switch (r.int(6)) {
      case 0: // bit flips
        for (let j = 0, n = 1 + r.int(16); j < n; j++) b[r.int(b.length)] ^= 1 << r.int(8);
        break;
      case 1: // interesting bytes, biased to the header where the sizes and offsets live
        for (let j = 0, n = 1 + r.int(8); j < n; j++) b[r.int(Math.min(b.length, r.next() < 0.7 ? 64 : b.length))] = r.pick(INTERESTING);
        break;
      case 2: // truncate
        b = b.subarray(0, r.int(b.length));
        break;
      case 3: {
        // insert random bytes
        const at = r.int(b.length);
        b = Buffer.concat([b.subarray(0, at), Buffer.from(Array.from({ length: 1 + r.int(256) }, () => r.int(256))), b.subarray(at)]);
        break;
      }
      case 4: {
        // duplicate a slice (repeated chunks, frames, segments)
        const from = r.int(b.length);
        const len = r.int(Math.min(4096, b.length - from));
        const at = r.int(b.length);
        b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + len), b.subarray(at)]);
        break;
      }
      default: // overwrite a 32-bit field with a big value
        if (b.length >= 4) b.writeUInt32BE(r.pick([0xffffffff, 0x7fffffff, 0x10000, 0]), r.int(Math.min(b.length - 3, 128)));
    }
  }
  return b;
}

function randomJson(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 3 ? 5 : 8)) {
    case 0:
      return r.pick([0, -1, 1e308, -1e-308, 2 ** 53 + 1, 0.5, 1000, 1e9]);
    case 1:
      return r.pick(['', 'x'.repeat(r.int(5000)), '\u0000', '👟', "' OR 1=1 --", '../../etc/passwd', '__proto__', '$."a"']);
    case 2:
      return r.pick([true, false, null]);
    case 3:
      return Array.from({ length: r.int(140) }, () => r.next() * 2 - 1);
    case 4:
      return r.pick(['vector', 'id', 'k', 'minScore', 'filter']);
    case 5:
    case 6: {
      const o: Record<string, unknown> = {};
      for (let i = 0, n = r.int(5); i < n; i++) o[r.pick(['vector', 'id', 'k', 'minScore', 'filter', 'threshold', 'limit', 'cursor', 'source', 'labelField', '__proto__', 'constructor', 'zz'])] = randomJson(r, depth + 1);
      return o;
    }
    default:
      return Array.from({ length: r.int(4) }, () => randomJson(r, depth + 1));
  }
}

function mutateText(r: Rng, text: string): string {
  const chars = [...text];
  for (let i = 0, n = 1 + r.int(4); i < n && chars.length > 0; i++) {
    const at = r.int(chars.length);
    const op = r.int(3);
    if (op === 0) chars.splice(at, 1);
    else if (op === 1) chars.splice(at, 0, r.pick(['{', '}', '[', ']', '"', ',', ':', '\\', '1e999', '-', 'null', '\u0000', '\ud800']));
    else chars[at] = r.pick(['0', '"', '}', ' ', 'e', '.']);
  }
  return chars.join('');
}

describe('fuzz', () => {
  let srv: RunningServer;
  const fixtures = fmnistFixtures().slice(0, 10);

  beforeAll(async () => {
    srv = await startServer(testConfig(tempDir(), { maxUploadBytes: 1024 * 1024, decodeTimeoutSeconds: 3, ingestRoots: [tempDir()] }));
    for (const f of fixtures) await request(srv.server).post('/v1/items').field('id', f.id).attach('image', f.bytes, 'x.png').expect(201);
  });
  afterAll(() => srv?.stop());

  it(`survives ${SECONDS} s of random and mutated uploads and JSON (seed from FUZZ_SEED)`, async () => {
    const r = rng(SEED);
    const base = sharp(photo('chelsea.jpg')).resize(48, 40);
    const seeds: Buffer[] = [
      fixtures[0].bytes,
      await base.clone().jpeg().toBuffer(),
      await base.clone().jpeg({ progressive: true }).toBuffer(),
      await base.clone().png().toBuffer(),
      await base.clone().webp().toBuffer(),
      await base.clone().webp({ lossless: true }).toBuffer(),
      await base.clone().gif().toBuffer(),
      await base.clone().avif().toBuffer(),
      await base.clone().tiff().toBuffer(),
      await base.clone().tiff({ compression: 'lzw' }).toBuffer(),
    ];
    const validJson = [`{"id":"${fixtures[1].id}","k":5}`, `{"vector":[${new Array(128).fill(0.1).join(',')}],"k":3,"filter":{"folder":"bag"}}`, '{"threshold":0.9,"limit":10}'];
    const statuses: Record<string, number> = {};
    const kinds: Record<string, number> = {};
    let failure: unknown;
    const deadline = performance.now() + SECONDS * 1000;
    let n = 0;
    for (; performance.now() < deadline; n++) {
      const api = request(srv.server);
      const kind = r.pick(['random-bytes', 'mutated-image', 'mutated-image', 'mutated-add', 'mutated-multipart', 'mutated-json', 'random-json'] as const);
      kinds[kind] = (kinds[kind] ?? 0) + 1;
      let send: request.Test;
      switch (kind) {
        case 'random-bytes':
          send = api.post('/v1/search').set('content-type', r.pick(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/tiff'])).send(Buffer.from(Array.from({ length: r.int(4096) }, () => r.int(256))));
          break;
        case 'mutated-image':
          send = api.post('/v1/search').attach('image', mutate(r, r.pick(seeds)), 'x.bin');
          break;
        case 'mutated-add':
          send = api.post('/v1/items').field('id', `fuzz-${n}`).attach('image', mutate(r, r.pick(seeds)), 'x.bin');
          break;
        case 'mutated-multipart': {
          const body = `--b\r\nContent-Disposition: form-data; name="k"\r\n\r\n3\r\n--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`;
          const raw = Buffer.concat([Buffer.from(mutateText(r, body)), r.pick(seeds), Buffer.from(mutateText(r, '\r\n--b--\r\n'))]);
          send = api.post(r.pick(['/v1/search', '/v1/items'])).set('content-type', mutateText(r, 'multipart/form-data; boundary=b').replace(/[^\x20-\x7e]/g, '')).send(raw);
          break;
        }
        case 'mutated-json':
          send = api.post(r.pick(['/v1/search', '/v1/duplicates'])).set('content-type', 'application/json').send(mutateText(r, r.pick(validJson)));
          break;
        default:
          send = api.post(r.pick(['/v1/search', '/v1/duplicates', '/v1/ingest', '/v1/eval'])).set('content-type', 'application/json').send(JSON.stringify(randomJson(r)));
      }
      const res = await send;
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      const ok = res.status < 500 && (res.status < 400 || res.status === 431 || typeof res.body?.error?.code === 'string') && !/\n\s+at |\.ts:\d+/.test(res.text ?? '');
      if (!ok && !failure) failure = { seed: SEED, iteration: n, kind, status: res.status, body: (res.text ?? '').slice(0, 300) };
      if (n % 100 === 99) expect((await request(srv.server).get('/healthz')).status).toBe(200);
    }
    if (process.env.FUZZ_REPORT) fs.writeFileSync(process.env.FUZZ_REPORT, JSON.stringify({ seed: SEED, seconds: SECONDS, requests: n, kinds, statuses }));
    expect(failure).toBeUndefined();
    expect(n).toBeGreaterThan(50);
    const after = await request(srv.server).post('/v1/search').attach('image', fixtures[3].bytes, 'q.png');
    expect(after.status).toBe(200);
    expect(after.body.results[0].id).toBe(fixtures[3].id);
  });
});
