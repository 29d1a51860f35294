/**
 * HTTP search latency at 16 concurrent clients, loopback only. Starts `likeness serve` as a child
 * process over the demo catalogue, then runs two phases for a fixed time each: search by uploaded
 * image (decode + embed + search) and search by stored id (search only, the baseline).
 * Prints one JSON line.
 *
 *   npx tsx bench/http-search.ts [--model DIR] [--seconds 15] [--clients 16] [--workers N]
 */
import * as path from 'node:path';
import { DEMO_CATALOG } from '../src/config/config';
import { spawnServer, tempDir, TEST_MODEL } from '../test/helpers';
import { listImages } from '../src/ingest/sources';
import * as fs from 'node:fs';
import { arg } from './args';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function phase(clients: number, seconds: number, send: (i: number) => Promise<Response>) {
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = c; performance.now() < deadline; i += clients) {
        const t = performance.now();
        const res = await send(i);
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    rps: Math.round(latencies.length / seconds),
    p50Ms: +percentile(latencies, 50).toFixed(1),
    p99Ms: +percentile(latencies, 99).toFixed(1),
  };
}

async function main(): Promise<void> {
  const model = arg('model', 'BENCH_MODEL', TEST_MODEL);
  const seconds = Number(arg('seconds', 'BENCH_SECONDS', '15'));
  const clients = Number(arg('clients', 'BENCH_CLIENTS', '16'));
  const workers = arg('workers', 'BENCH_WORKERS', '');
  const env = { LIKENESS_DATA_DIR: tempDir(), LIKENESS_MODEL: model, LIKENESS_BACKEND: 'auto', ...(workers ? { LIKENESS_WORKERS: workers } : {}) };
  const srv = spawnServer(env, 30000 + Math.floor(Math.random() * 20000), { args: ['--import', DEMO_CATALOG], startSeconds: 60 });
  const base = srv.base;
  try {
    await srv.up();
    const ids = await listImages(DEMO_CATALOG);
    const bodies = ids.map((id) => fs.readFileSync(path.join(DEMO_CATALOG, id)));
    const health = (await (await fetch(`${base}/healthz`)).json()) as { model: { name: string }; backend: string; items: number };
    const byImage = await phase(clients, seconds, (i) =>
      fetch(`${base}/v1/search?k=10`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: bodies[i % bodies.length] }),
    );
    const byId = await phase(clients, seconds, (i) =>
      fetch(`${base}/v1/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: ids[i % ids.length], k: 10 }) }),
    );
    console.log(JSON.stringify({ bench: 'http-search', model: health.model.name, backend: health.backend, items: health.items, clients, seconds, byImage, byId }));
  } finally {
    await srv.stop();
  }
}

void main();
