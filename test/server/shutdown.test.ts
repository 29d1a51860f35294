/**
 * Graceful shutdown: SIGTERM while a request is in flight. New connections are refused at once, the
 * in-flight request completes, the process exits 0, and the index snapshot on disk covers every write
 * (the next start loads it instead of rebuilding).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { startServer } from '../../src/cli/commands/serve';
import { SNAPSHOT_FILE } from '../../src/index/index-store';
import { fmnistFixtures, spawnServer, tempDir, testConfig } from '../helpers';

const fixtures = fmnistFixtures();

/** Starts a multipart add and sends only the first half of its body; `finish` sends the rest. */
function slowAdd(base: string, id: string, image: Buffer) {
  const boundary = 'likenessboundary';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="id"\r\n\r\n${id}\r\n`),
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\nContent-Type: image/png\r\n\r\n`),
    image,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const url = new URL(`${base}/v1/items`);
  let req!: http.ClientRequest;
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req = http.request({ host: url.hostname, port: url.port, method: 'POST', path: url.pathname, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
  });
  const half = Math.floor(body.length / 2);
  req.write(body.subarray(0, half));
  return { response, finish: () => req.end(body.subarray(half)) };
}

describe('graceful shutdown', () => {
  it('SIGTERM: refuses new connections, finishes the request in flight, snapshots, exits 0', async () => {
    const dataDir = tempDir();
    // No automatic snapshots: the only snapshot is the one written at shutdown.
    const srv = spawnServer({ LIKENESS_DATA_DIR: dataDir, LIKENESS_WORKERS: '0', LIKENESS_SNAPSHOT_EVERY: '0', LIKENESS_SHUTDOWN_GRACE: '20' });
    await srv.up();
    for (const f of fixtures.slice(0, 5)) {
      const form = new FormData();
      form.set('id', f.id);
      form.set('image', new Blob([new Uint8Array(f.bytes)]), 'x.png');
      expect((await fetch(`${srv.base}/v1/items`, { method: 'POST', body: form })).status).toBe(201);
    }
    const inFlight = slowAdd(srv.base, 'in-flight', fixtures[5].bytes);
    await new Promise((r) => setTimeout(r, 300)); // the server has the request's headers: it is in flight
    const exited = new Promise<number | null>((r) => srv.child.once('exit', (code) => r(code)));
    srv.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    await expect(fetch(`${srv.base}/healthz`)).rejects.toThrow(); // no longer accepting
    inFlight.finish();
    const res = await inFlight.response;
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body).item.id).toBe('in-flight');
    expect(await exited).toBe(0);

    const info = JSON.parse(fs.readFileSync(path.join(dataDir, 'index', SNAPSHOT_FILE), 'utf8'));
    expect(info.size).toBe(6);
    const again = await startServer(testConfig(dataDir, { snapshotEvery: 0 }));
    try {
      expect(again.likeness.embedded!.index.outcome).toBe('loaded');
      expect(info.seq).toBe((await again.likeness.service.stats()).seq); // the snapshot covers every write
      expect(again.likeness.embedded!.index.size()).toBe(6);
    } finally {
      await again.stop();
    }
  });

  it('cuts off requests still running after the grace period, and still snapshots', async () => {
    const dataDir = tempDir();
    const srv = await startServer(testConfig(dataDir, { shutdownGraceSeconds: 0.3, snapshotEvery: 0 }));
    const stalled = slowAdd(`http://127.0.0.1:${srv.port}`, 'never-finished', fixtures[0].bytes);
    const outcome = stalled.response.then(
      () => 'answered',
      () => 'cut off',
    );
    await new Promise((r) => setTimeout(r, 200));
    const t = performance.now();
    await srv.stop();
    expect(performance.now() - t).toBeLessThan(5000);
    expect(await outcome).toBe('cut off');
    expect(fs.existsSync(path.join(dataDir, 'index', SNAPSHOT_FILE))).toBe(true);
  });
});
