/**
 * Crash test: 20 rounds of SIGKILL at a random moment while clients add and delete items and an ingest
 * job runs, restarting each time. Afterwards: no acknowledged add is lost, no acknowledged delete
 * comes back, every acknowledged ingest job finished, and the index holds exactly the catalogue.
 * CRASH_REPORT=file writes the round-by-round figures (docs/RELIABILITY.md).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fmnistFixtures, randomPort, spawnServer, tempDir } from '../helpers';

const fixtures = fmnistFixtures();
const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 20);
const INGEST_FILES = 20;

interface RoundReport {
  round: number;
  killAfterMs: number;
  adds: number;
  deletes: number;
  ingest: boolean;
  /** The round's ingest job was still running when the kill came. */
  ingestInterrupted?: boolean;
}

describe('crash test', () => {
  it(`${ROUNDS} rounds of kill -9 during adds, deletes and ingest lose no acknowledged write`, async () => {
    const root = tempDir('likeness-crash-roots-');
    const env = {
      LIKENESS_DATA_DIR: tempDir(),
      LIKENESS_WORKERS: '0',
      LIKENESS_SNAPSHOT_EVERY: '7', // snapshots often, so kills also land during snapshot writes
      LIKENESS_INGEST_ROOTS: root,
      LIKENESS_INGEST_CHUNK: '3',
    };
    const port = randomPort();
    const ackedAdds = new Set<string>();
    const ackedDeletes = new Set<string>();
    // Deletes sent whose answer was lost to the kill: either outcome is correct for those.
    const unsureDeletes = new Set<string>();
    const ingested: string[] = []; // ids of files in ingest jobs the server acknowledged (202)
    const rounds: RoundReport[] = [];
    const t0 = performance.now();

    for (let round = 0; round < ROUNDS; round++) {
      const srv = spawnServer(env, port);
      await srv.up();
      let jobId: string | undefined;
      const report: RoundReport = { round, killAfterMs: Math.round(200 + Math.random() * 700), adds: 0, deletes: 0, ingest: round % 2 === 0 };
      // The ingest job starts at a random moment of the round, so the kill finds some jobs running.
      const submitIngest = async (): Promise<void> => {
        if (!report.ingest) return;
        const dir = path.join(root, `r${round}`);
        fs.mkdirSync(dir);
        const ids = Array.from({ length: INGEST_FILES }, (_, i) => `r${round}-f${i}.png`);
        ids.forEach((id, i) => fs.writeFileSync(path.join(dir, id), fixtures[(round * 11 + i * 7) % fixtures.length].bytes));
        await new Promise((r) => setTimeout(r, Math.random() * report.killAfterMs * 0.8));
        let res: Response;
        try {
          res = await fetch(`${srv.base}/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ source: { type: 'folder', path: dir }, duplicates: 'keep' }) });
        } catch {
          return; // killed before the answer: not acknowledged
        }
        expect(res.status).toBe(202);
        ingested.push(...ids);
        jobId = await res.json().then((b) => (b as { job: { id: string } }).job.id, () => undefined);
      };
      let stop = false;
      const writer = async (w: number): Promise<void> => {
        for (let i = 0; !stop; i++) {
          const id = `r${round}-w${w}-${i}`;
          const form = new FormData();
          form.set('id', id);
          form.set('image', new Blob([new Uint8Array(fixtures[(round * 37 + w * 13 + i) % fixtures.length].bytes)]), 'x.png');
          try {
            const res = await fetch(`${srv.base}/v1/items`, { method: 'POST', body: form });
            if (res.status === 201) {
              ackedAdds.add(id);
              report.adds++;
            }
          } catch {
            return; // the connection died with the server
          }
        }
      };
      const deleter = async (): Promise<void> => {
        while (!stop) {
          const candidates = [...ackedAdds].filter((id) => !ackedDeletes.has(id) && !unsureDeletes.has(id));
          if (candidates.length < 5) {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
          const id = candidates[Math.floor(Math.random() * candidates.length)];
          unsureDeletes.add(id);
          try {
            const res = await fetch(`${srv.base}/v1/items/${encodeURIComponent(id)}`, { method: 'DELETE' });
            if (res.status === 204) {
              unsureDeletes.delete(id);
              ackedDeletes.add(id);
              report.deletes++;
            }
            await new Promise((r) => setTimeout(r, 30)); // about one delete per three adds
          } catch {
            return;
          }
        }
      };
      const clients = [writer(0), writer(1), writer(2), deleter(), submitIngest()];
      await new Promise((r) => setTimeout(r, report.killAfterMs));
      // On a loaded machine the first adds can take longer than the random delay: make sure each
      // round has written something before it is killed (bounded, so a stuck server still fails).
      for (const until = performance.now() + 15_000; report.adds < 4 && performance.now() < until; ) await new Promise((r) => setTimeout(r, 10));
      if (jobId) {
        const view = await fetch(`${srv.base}/v1/jobs/${jobId}`).then((r) => r.json() as Promise<{ job: { status: string } }>, () => undefined);
        report.ingestInterrupted = view?.job.status !== 'done';
      }
      const killed = srv.stop('SIGKILL');
      stop = true;
      await Promise.all([...clients, killed]);
      rounds.push(report);
    }
    expect(ackedAdds.size).toBeGreaterThan(ROUNDS * 3);
    expect(ackedDeletes.size).toBeGreaterThan(0);

    const srv = spawnServer(env, port);
    try {
      await srv.up();
      const get = (p: string) => fetch(`${srv.base}${p}`);
      // Interrupted ingest jobs resume on start; wait for them.
      let jobs: Array<{ status: string; total: number; added: number; unchanged: number; failed: number }> = [];
      for (let i = 0; i < 600; i++) {
        jobs = ((await (await get('/v1/jobs')).json()) as { jobs: typeof jobs }).jobs;
        if (jobs.every((j) => j.status === 'done' || j.status === 'failed')) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(jobs.map((j) => j.status)).toEqual(jobs.map(() => 'done'));
      for (const j of jobs) expect({ failed: j.failed, processed: j.added + j.unchanged }).toEqual({ failed: 0, processed: j.total });

      for (const id of [...ackedAdds].filter((x) => !ackedDeletes.has(x) && !unsureDeletes.has(x)).concat(ingested)) {
        expect({ id, status: (await get(`/v1/items/${encodeURIComponent(id)}`)).status }).toEqual({ id, status: 200 });
      }
      for (const id of ackedDeletes) expect({ id, status: (await get(`/v1/items/${encodeURIComponent(id)}`)).status }).toEqual({ id, status: 404 });

      // The index holds exactly the catalogue: same count, and every stored item is found by its own vector.
      const health = (await (await get('/healthz')).json()) as { items: number; searchable: number; indexed: number };
      expect(health.indexed).toBe(health.searchable);
      expect(health.searchable).toBe(health.items);
      const ids: string[] = [];
      let cursor: string | undefined;
      do {
        const page = (await (await get(`/v1/items?limit=1000${cursor ? `&cursor=${cursor}` : ''}`)).json()) as { items: Array<{ id: string }>; next?: string };
        ids.push(...page.items.map((x) => x.id));
        cursor = page.next;
      } while (cursor);
      expect(ids.length).toBe(health.items);
      for (const id of ids) {
        const res = (await (await fetch(`${srv.base}/v1/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, k: 100 }) })).json()) as {
          results: Array<{ id: string; score: number }>;
        };
        // With more than k byte-identical copies the item may be crowded out; then every hit is a copy.
        const found = res.results.some((r) => r.id === id) || res.results.every((r) => r.score > 0.9999);
        expect({ id, found }).toEqual({ id, found: true });
      }
      if (process.env.CRASH_REPORT) {
        fs.writeFileSync(
          process.env.CRASH_REPORT,
          JSON.stringify({ rounds, ackedAdds: ackedAdds.size, ackedDeletes: ackedDeletes.size, unsureDeletes: unsureDeletes.size, ingestJobs: jobs.length, ingestedFiles: ingested.length, finalItems: health.items, seconds: Math.round((performance.now() - t0) / 1000) }, null, 1),
        );
      }
    } finally {
      await srv.stop();
    }
  }, 300_000); // ~40 s alone; 20 server starts slow down a lot when other suites share the cores
});
