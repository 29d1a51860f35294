/**
 * Load test: mixed search-by-image, search-by-id and add traffic from 32 concurrent clients for 60 s
 * (autocannon, loopback only) against `likeness serve` over the demo catalogue, with API keys on.
 * Reports requests, rps, latency percentiles, status counts (5xx must be 0) and the server's memory:
 * after start, after a warm-up (the baseline: wasm memory and caches only grow to their working size),
 * peak during the run, and after an idle spell. Adds rotate over a fixed set of ids (replacing items)
 * so the catalogue's size stays put and memory can return to the baseline. Prints one JSON line.
 *
 *   npx tsx bench/load.ts [--seconds 60] [--clients 32] [--warmup 10] [--idle 30] [--model DIR] [--workers N]
 */
import autocannon from 'autocannon';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEMO_CATALOG } from '../src/config/config';
import { listImages } from '../src/ingest/sources';
import { generateKey, hashKey } from '../src/server/auth';
import { spawnServer, tempDir, TEST_MODEL } from '../test/helpers';
import { arg } from './args';

/** Share of each request kind (the rest are adds). */
const SEARCH_IMAGE = 0.45;
const SEARCH_ID = 0.4;
/** Adds replace one of this many ids, so the catalogue does not grow during the run. */
const ADD_IDS = 100;

const mb = (bytes: number): number => Math.round(bytes / 1024 / 102.4) / 10;

/** Resident memory of a process, from /proc (Linux). */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** The server's V8 heap in use, from its Prometheus metrics. */
async function heapUsed(base: string, key: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${key}` } })).text();
  const m = /^likeness_nodejs_heap_size_used_bytes (\S+)/m.exec(text);
  return m ? Number(m[1]) : NaN;
}

function multipart(id: string, image: Buffer): { body: Buffer; type: string } {
  const b = `likeness${Math.random().toString(36).slice(2)}`;
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="id"\r\n\r\n${id}\r\n--${b}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`),
    image,
    Buffer.from(`\r\n--${b}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${b}` };
}

async function main(): Promise<void> {
  const seconds = Number(arg('seconds', 'BENCH_SECONDS', '60'));
  const clients = Number(arg('clients', 'BENCH_CLIENTS', '32'));
  const warmup = Number(arg('warmup', 'BENCH_WARMUP', '10'));
  const idle = Number(arg('idle', 'BENCH_IDLE', '30'));
  const model = arg('model', 'BENCH_MODEL', TEST_MODEL);
  const workers = arg('workers', 'BENCH_WORKERS', '');

  const dir = tempDir('likeness-load-');
  const key = generateKey();
  const keysFile = path.join(dir, 'keys.jsonl');
  // Auth on, as in production; this key has no rate limit so the test measures the server, not the limiter.
  fs.writeFileSync(keysFile, `${JSON.stringify({ name: 'load', sha256: hashKey(key), scopes: ['read', 'write'], rateLimit: 0 })}\n`);
  const env = {
    LIKENESS_DATA_DIR: path.join(dir, 'data'),
    LIKENESS_MODEL: model,
    LIKENESS_BACKEND: 'auto',
    LIKENESS_API_KEYS_FILE: keysFile,
    ...(workers ? { LIKENESS_WORKERS: workers } : {}),
  };
  const srv = spawnServer(env, 30000 + Math.floor(Math.random() * 20000), { args: ['--import', DEMO_CATALOG], startSeconds: 120 });
  const { child, base } = srv;
  const auth = { authorization: `Bearer ${key}` };
  try {
    await srv.up();
    const ids = await listImages(DEMO_CATALOG);
    const images = ids.map((id) => fs.readFileSync(path.join(DEMO_CATALOG, id)));
    const health = (await (await fetch(`${base}/healthz`)).json()) as { model: { name: string }; backend: string; items: number };
    const pid = child.pid!;
    const memory = { rssStartMB: mb(rssOf(pid)), rssBaselineMB: 0, rssPeakMB: 0, rssAfterMB: 0, heapBaselineMB: 0, heapAfterMB: 0 };

    let n = 0;
    const run = (duration: number) =>
      autocannon({
        url: base,
        connections: clients,
        duration,
        timeout: 30,
        requests: [
          {
            setupRequest: (req) => {
              const i = n++;
              const roll = Math.random();
              if (roll < SEARCH_IMAGE) {
                return { ...req, method: 'POST', path: '/v1/search?k=10', headers: { ...auth, 'content-type': 'image/png' }, body: images[i % images.length] as unknown as string };
              }
              if (roll < SEARCH_IMAGE + SEARCH_ID) {
                return { ...req, method: 'POST', path: '/v1/search', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ id: ids[i % ids.length], k: 10 }) };
              }
              const { body, type } = multipart(`load-${i % ADD_IDS}`, images[(i * 7) % images.length]);
              return { ...req, method: 'POST', path: '/v1/items', headers: { ...auth, 'content-type': type }, body: body as unknown as string };
            },
          },
        ],
      });

    await run(warmup);
    await new Promise((r) => setTimeout(r, 3000));
    memory.rssBaselineMB = mb(rssOf(pid));
    memory.heapBaselineMB = mb(await heapUsed(base, key));

    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 250);
    const result = await run(seconds);
    clearInterval(sampler);
    memory.rssPeakMB = mb(peak);
    await new Promise((r) => setTimeout(r, idle * 1000));
    memory.rssAfterMB = mb(rssOf(pid));
    memory.heapAfterMB = mb(await heapUsed(base, key));

    const codes = result.statusCodeStats as unknown as Record<string, { count: number }>;
    const byStatus = Object.fromEntries(Object.entries(codes).map(([code, s]) => [code, s.count]));
    const count = (lo: number, hi: number) => Object.entries(byStatus).reduce((s, [c, k]) => s + (Number(c) >= lo && Number(c) < hi ? k : 0), 0);
    const after = (await (await fetch(`${base}/healthz`)).json()) as { items: number; indexed: number; embedQueue: number };

    const t = performance.now();
    const exitCode = await srv.stop();
    console.log(
      JSON.stringify({
        bench: 'load',
        model: health.model.name,
        backend: health.backend,
        items: health.items,
        clients,
        seconds,
        mix: { searchByImage: SEARCH_IMAGE, searchById: SEARCH_ID, add: +(1 - SEARCH_IMAGE - SEARCH_ID).toFixed(2) },
        requests: result.requests.total,
        rps: Math.round(result.requests.average),
        latencyMs: { p50: result.latency.p50, p90: result.latency.p90, p99: result.latency.p99, max: result.latency.max },
        status: byStatus,
        '2xx': count(200, 300),
        '4xx': count(400, 500),
        '5xx': count(500, 600),
        socketErrors: result.errors,
        timeouts: result.timeouts,
        memory,
        after: { items: after.items, indexed: after.indexed, embedQueue: after.embedQueue },
        shutdown: { exitCode, ms: Math.round(performance.now() - t) },
        machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}, ${mb(os.totalmem())} MB, load average ${os.loadavg()[0].toFixed(1)}`,
      }),
    );
  } finally {
    await srv.stop('SIGKILL');
  }
}

void main();
