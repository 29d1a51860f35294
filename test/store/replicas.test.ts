/**
 * Two `likeness serve` processes against one PostgreSQL database (PGlite + pgvector over the wire
 * protocol, see pg-server.ts): each sees the other's writes; one ingest job is split across both with
 * every item written once; killing one mid-job, the other finishes the job after the lease expires.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { ChildServer, fmnistFixtures, spawnServer, tempDir } from '../helpers';
import { startPostgres, TestPostgres } from './pg-server';

const fixtures = fmnistFixtures();
/** Lease short enough for the test to wait one out, long enough for a chunk of 4 small images. */
const LEASE_SECONDS = 3;

/** `copies` x 100 Fashion-MNIST images under distinct names (identical bytes are kept: --duplicates keep). */
function folder(copies: number): string {
  const root = tempDir('likeness-replicas-');
  for (let c = 0; c < copies; c++) {
    fs.mkdirSync(path.join(root, `c${c}`));
    for (const f of fixtures) fs.copyFileSync(f.file, path.join(root, `c${c}`, `${f.folder}-${path.basename(f.file)}`));
  }
  return root;
}

async function json(base: string, p: string, init?: RequestInit): Promise<any> {
  const res = await fetch(`${base}${p}`, init);
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

async function waitFor<T>(what: string, poll: () => Promise<T | undefined>, seconds = 90): Promise<T> {
  for (let i = 0; i < seconds * 10; i++) {
    const v = await poll();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('two replicas on one PostgreSQL database', () => {
  let pg: TestPostgres;
  let sql: Client;
  let root: string;
  let a: ChildServer;
  let b: ChildServer;
  const env = () => ({
    LIKENESS_STORE: pg.url,
    LIKENESS_PG_POOL_SIZE: '3',
    LIKENESS_INGEST_ROOTS: root,
    LIKENESS_INGEST_CHUNK: '4',
    LIKENESS_INGEST_LEASE: String(LEASE_SECONDS),
    LIKENESS_DUPLICATES: 'keep',
    LIKENESS_WORKERS: '0',
  });
  const owners = async (job: string) =>
    (await sql.query<{ owner: string; n: string }>(`SELECT split_part(lease_owner, '/', 2) AS owner, count(*) AS n FROM job_items WHERE job_id = $1 AND state <> 'pending' GROUP BY 1`, [job])).rows;
  /** A manifest job over copies `from..to-1` with ids `<prefix>/c<copy>/<fixture id>`; returns its id and size. */
  const submit = async (base: string, prefix: string, from: number, to: number) => {
    const manifest = path.join(root, `${prefix}.jsonl`);
    const lines = [];
    for (let c = from; c < to; c++) for (const f of fixtures) lines.push(JSON.stringify({ path: path.join(root, `c${c}`, `${f.folder}-${path.basename(f.file)}`), id: `${prefix}/c${c}/${f.id}` }));
    fs.writeFileSync(manifest, lines.join('\n'));
    const res = await json(base, '/v1/ingest', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: { type: 'manifest', path: manifest } }) });
    expect(res.status).toBe(202);
    return { job: res.body.job.id as string, total: lines.length };
  };

  beforeAll(async () => {
    pg = await startPostgres();
    sql = new Client({ connectionString: pg.url });
    await sql.connect();
    root = folder(8);
    a = spawnServer(env());
    await a.up(); // the first applies the migrations; the second then finds them applied
    b = spawnServer(env());
    await b.up();
  });
  afterAll(async () => {
    for (const s of [a, b]) if (s && s.child.exitCode === null && s.child.signalCode === null) await s.stop('SIGKILL');
    await sql?.end();
    await pg?.stop();
  });

  it("each sees the other's writes", async () => {
    const f = fixtures[7];
    const form = new FormData();
    form.set('id', 'written-by-a');
    form.set('metadata', JSON.stringify({ by: 'a' }));
    form.set('image', new Blob([f.bytes], { type: 'image/png' }), 'x.png');
    expect((await fetch(`${a.base}/v1/items`, { method: 'POST', body: form })).status).toBe(201);
    expect((await json(b.base, '/v1/items/written-by-a')).body.item.metadata).toEqual({ by: 'a' });
    const search = await json(b.base, '/v1/search', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'written-by-a', k: 1 }) });
    expect(search.body.results[0].id).toBe('written-by-a');
    expect((await fetch(`${b.base}/v1/items/written-by-a`, { method: 'DELETE' })).status).toBe(204);
    expect((await json(a.base, '/v1/items/written-by-a')).status).toBe(404);
  });

  it('split one job across both, every item written exactly once', async () => {
    // Submitted to a only: b finds the job by polling the database.
    const { job, total } = await submit(a.base, 'split', 0, 4);
    const done = await waitFor('the job', async () => {
      const j = (await json(b.base, `/v1/jobs/${job}`)).body.job;
      return j.status === 'done' ? j : undefined;
    });
    expect(done).toMatchObject({ total, added: total, unchanged: 0, duplicates: 0, failed: 0 });
    const byOwner = await owners(job);
    const pids = byOwner.map((o) => Number(o.owner)).sort();
    expect(pids).toEqual([a.child.pid, b.child.pid].sort());
    expect(byOwner.reduce((s, o) => s + Number(o.n), 0)).toBe(total);
    const writes = await sql.query<{ items: string; writes: string }>(
      `SELECT count(*) AS items, max(seq) - min(seq) + 1 AS writes FROM items WHERE id LIKE 'split/%'`,
    );
    // No other writes ran meanwhile, so `total` consecutive sequence numbers mean `total` writes: none repeated.
    expect(writes.rows[0]).toEqual({ items: String(total), writes: String(total) });
  });

  it('killed mid-job, the other replica finishes the job', async () => {
    const { job, total } = await submit(a.base, 'kill', 4, 8);
    // Wait until both work on it, then kill -9 the one that took the job first.
    await waitFor('both replicas on the job', async () => ((await owners(job)).length === 2 ? true : undefined));
    const before = (await json(b.base, `/v1/jobs/${job}`)).body.job;
    expect(before.done).toBeLessThan(total);
    await a.stop('SIGKILL');
    const done = await waitFor('the job after the kill', async () => {
      const j = (await json(b.base, `/v1/jobs/${job}`)).body.job;
      return j.status === 'done' ? j : undefined;
    });
    expect(done).toMatchObject({ total, added: total, unchanged: 0, failed: 0 });
    const items = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM items WHERE id LIKE 'kill/%'`);
    expect(Number(items.rows[0].n)).toBe(total);
    const left = await sql.query(`SELECT 1 FROM job_items WHERE job_id = $1 AND state IN ('pending', 'claimed')`, [job]);
    expect(left.rowCount).toBe(0);
    // a died holding claimed chunks (it always claims one ahead): b took them over after the lease.
    const retried = await sql.query<{ n: string }>(`SELECT count(*) AS n FROM job_items WHERE job_id = $1 AND attempts > 1`, [job]);
    expect(Number(retried.rows[0].n)).toBeGreaterThan(0);
    // b's own search sees everything a wrote before it died.
    expect((await json(b.base, '/healthz')).body.items).toBe(400 + total);
  });
});
