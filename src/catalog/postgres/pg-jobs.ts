/**
 * Ingest jobs in PostgreSQL, shared by every replica. A job's plan is written when it is created;
 * replicas claim batches of its items with a lease (FOR UPDATE SKIP LOCKED, so two replicas never
 * claim the same item), and write each item's outcome in the same transaction as the item itself,
 * only while they still hold its lease. A replica that dies leaves its batch claimed until the lease
 * expires; then any replica reclaims it.
 */
import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import { toJobRow } from '../jobs';
import type { FailureRow, ItemOutcome, JobRow, JobStatus, PendingItem, PlannedItem, RawJobRow } from '../jobs';
import type { JobQueue } from '../store';
import type { Queryable } from './pg-pool';

/** Plan rows per INSERT when a job is created. */
const PLAN_INSERT_CHUNK = 1000;

type RawJob = RawJobRow<unknown, Date>;

const toJob = (r: RawJob): JobRow => toJobRow(r, (v) => v, (d) => d.toISOString());

const num = (v: string | number | null): number | null => (v === null ? null : Number(v));

export class PgJobQueue implements JobQueue {
  constructor(
    private readonly db: Queryable,
    private readonly tx: <T>(fn: (c: PoolClient) => Promise<T>) => Promise<T>,
  ) {}

  async create(source: unknown, options: unknown, items: PlannedItem[]): Promise<JobRow> {
    const id = randomUUID();
    await this.tx(async (c) => {
      await c.query(`INSERT INTO jobs (id, source, options, status, total) VALUES ($1, $2, $3, 'queued', $4)`, [id, JSON.stringify(source), JSON.stringify(options), items.length]);
      for (let i = 0; i < items.length; i += PLAN_INSERT_CHUNK) {
        const part = items.slice(i, i + PLAN_INSERT_CHUNK);
        await c.query(
          `INSERT INTO job_items (job_id, key, id, path, "offset", size, metadata)
           SELECT $1, * FROM unnest($2::int[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::jsonb[])`,
          [id, part.map((_, j) => i + j + 1), part.map((p) => p.id), part.map((p) => p.path), part.map((p) => p.offset), part.map((p) => p.size), part.map((p) => JSON.stringify(p.metadata))],
        );
      }
    });
    return (await this.get(id))!;
  }

  async get(id: string): Promise<JobRow | undefined> {
    const r = (await this.db.query<RawJob>('SELECT * FROM jobs WHERE id = $1', [id])).rows[0];
    return r && toJob(r);
  }

  async list(limit: number): Promise<JobRow[]> {
    return (await this.db.query<RawJob>('SELECT * FROM jobs ORDER BY created_at DESC, id LIMIT $1', [limit])).rows.map(toJob);
  }

  async unfinished(): Promise<JobRow[]> {
    return (await this.db.query<RawJob>(`SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id`)).rows.map(toJob);
  }

  async claim(jobId: string, owner: string, limit: number, leaseMs: number): Promise<PendingItem[]> {
    const { rows } = await this.db.query<{ key: number; id: string; path: string; offset: string | null; size: string | null; metadata: Record<string, unknown> }>(
      // The CTE runs once (a `key IN (subquery LIMIT n)` may be re-run by the planner and claim more than n).
      `WITH free AS (
         SELECT key FROM job_items
         WHERE job_id = $1 AND (state = 'pending' OR (state = 'claimed' AND lease_until < clock_timestamp()))
         AND EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND status IN ('queued', 'running'))
         ORDER BY key LIMIT $3 FOR UPDATE SKIP LOCKED)
       UPDATE job_items j SET state = 'claimed', lease_owner = $2, lease_until = clock_timestamp() + $4 * interval '1 millisecond', attempts = j.attempts + 1
       FROM free WHERE j.job_id = $1 AND j.key = free.key
       RETURNING j.key, j.id, j.path, j."offset", j.size, j.metadata`,
      [jobId, owner, limit, leaseMs],
    );
    return rows.map((r) => ({ seq: r.key, id: r.id, path: r.path, offset: num(r.offset), size: num(r.size), metadata: r.metadata })).sort((a, b) => a.seq - b.seq);
  }

  async release(jobId: string, owner: string): Promise<void> {
    await this.db.query(`UPDATE job_items SET state = 'pending', lease_owner = NULL, lease_until = NULL WHERE job_id = $1 AND state = 'claimed' AND lease_owner = $2`, [jobId, owner]);
  }

  async finishIfComplete(jobId: string): Promise<boolean> {
    const { rows } = await this.db.query<{ status: string }>(
      `UPDATE jobs SET status = 'done', finished_at = COALESCE(finished_at, now())
       WHERE id = $1 AND status IN ('queued', 'running')
         AND NOT EXISTS (SELECT 1 FROM job_items WHERE job_id = $1 AND state IN ('pending', 'claimed'))
       RETURNING status`,
      [jobId],
    );
    return rows.length > 0;
  }

  async setStatus(jobId: string, status: JobStatus, error: string | null = null): Promise<void> {
    // A replica starting its share of a running job must not reopen one another replica finished or a client cancelled.
    await this.db.query(
      `UPDATE jobs SET status = $2, error = $3,
         started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
         finished_at = CASE WHEN $2 IN ('done', 'failed', 'cancelled') THEN now() ELSE NULL END
       WHERE id = $1 AND status IN ('queued', 'running')`,
      [jobId, status, error],
    );
  }

  async cancel(jobId: string): Promise<JobRow | undefined> {
    await this.setStatus(jobId, 'cancelled');
    return this.get(jobId);
  }

  async report(jobId: string, afterSeq: number, limit: number): Promise<FailureRow[]> {
    const { rows } = await this.db.query<{ key: number; id: string; path: string; state: FailureRow['state']; code: string | null; message: string | null; duplicate_of: string | null }>(
      `SELECT key, id, path, state, code, message, duplicate_of FROM job_items
       WHERE job_id = $1 AND state IN ('failed', 'duplicate') AND key > $2 ORDER BY key LIMIT $3`,
      [jobId, afterSeq, limit],
    );
    return rows.map((r) => ({ seq: r.key, id: r.id, path: r.path, state: r.state, code: r.code, message: r.message, duplicateOf: r.duplicate_of }));
  }
}

/** Inside the chunk's transaction: the keys of `keys` whose lease `owner` still holds, locked until commit. */
export async function holdLeases(c: PoolClient, jobId: string, owner: string, keys: number[]): Promise<Set<number>> {
  if (keys.length === 0) return new Set();
  const { rows } = await c.query<{ key: number }>(
    `SELECT key FROM job_items WHERE job_id = $1 AND key = ANY($2::int[]) AND state = 'claimed' AND lease_owner = $3 FOR UPDATE`,
    [jobId, keys, owner],
  );
  return new Set(rows.map((r) => r.key));
}

/** Inside the chunk's transaction: item outcomes and the job's counters, for items `owner` still holds. */
export async function recordOutcomes(c: PoolClient, jobId: string, owner: string, outcomes: ItemOutcome[]): Promise<void> {
  if (outcomes.length === 0) return;
  await c.query(
    `WITH o AS (SELECT * FROM unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::text[]) AS o(key, state, code, message, duplicate_of)),
     u AS (
       UPDATE job_items j SET state = o.state, code = o.code, message = o.message, duplicate_of = o.duplicate_of, lease_until = NULL
       FROM o WHERE j.job_id = $1 AND j.key = o.key AND j.state = 'claimed' AND j.lease_owner = $7
       RETURNING o.state)
     UPDATE jobs SET
       added = added + (SELECT count(*) FROM u WHERE state = 'added'),
       unchanged = unchanged + (SELECT count(*) FROM u WHERE state = 'unchanged'),
       duplicates = duplicates + (SELECT count(*) FROM u WHERE state = 'duplicate'),
       failed = failed + (SELECT count(*) FROM u WHERE state = 'failed')
     WHERE id = $1`,
    [jobId, outcomes.map((o) => o.seq), outcomes.map((o) => o.state), outcomes.map((o) => o.code ?? null), outcomes.map((o) => o.message ?? null), outcomes.map((o) => o.duplicateOf ?? null), owner],
  );
}
