/**
 * Ingest jobs in the catalogue database. A job's plan (every item it will add) is written when the
 * job is created, in chunks with the job's row last, so the job appears whole or not at all (a crash
 * halfway leaves plan rows without a job, marked in jobs_planning and removed at the next start). Each item's outcome is written
 * in the same transaction as the item itself, so after a crash a job resumes exactly where it
 * stopped: no item is added twice or re-embedded.
 */
import type Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { FINAL_STATUSES, toJobRow } from './jobs';
import type { FailureRow, ItemOutcome, JobRow, JobStatus, PendingItem, PlannedItem, RawJobRow } from './jobs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, source TEXT NOT NULL, options TEXT NOT NULL, status TEXT NOT NULL,
  total INTEGER NOT NULL DEFAULT 0, added INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,
  duplicates INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0, error TEXT,
  created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT
);
CREATE TABLE IF NOT EXISTS job_items (
  job_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, path TEXT NOT NULL,
  offset INTEGER, size INTEGER, metadata TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',
  code TEXT, message TEXT, duplicate_of TEXT,
  PRIMARY KEY (job_id, seq)
);
CREATE INDEX IF NOT EXISTS job_items_pending ON job_items (job_id, state, seq);
-- Jobs whose plan is being written; a row left here at start names a creation a crash cut short.
CREATE TABLE IF NOT EXISTS jobs_planning (id TEXT PRIMARY KEY);
`;

type RawJob = RawJobRow<string, string>;

/** Plan items written per transaction when a job is created. */
const PLAN_CHUNK = 5000;

const toJob = (r: RawJob): JobRow => toJobRow(r, JSON.parse, (t) => t);

const COUNTER: Record<ItemOutcome['state'], string> = { added: 'added', unchanged: 'unchanged', duplicate: 'duplicates', failed: 'failed' };

export class SqliteJobStore {
  private readonly stmts;

  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
    // The plan of a job whose creation a crash cut short (found by its marker, not by scanning every plan row).
    db.exec(`DELETE FROM job_items WHERE job_id IN (SELECT id FROM jobs_planning); DELETE FROM jobs_planning`);
    this.stmts = {
      insertJob: db.prepare(`INSERT INTO jobs (id, source, options, status, total, created_at) VALUES (?, ?, ?, 'queued', ?, ?)`),
      startPlan: db.prepare(`INSERT INTO jobs_planning (id) VALUES (?)`),
      endPlan: db.prepare(`DELETE FROM jobs_planning WHERE id = ?`),
      insertItem: db.prepare(`INSERT INTO job_items (job_id, seq, id, path, offset, size, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)`),
      get: db.prepare(`SELECT * FROM jobs WHERE id = ?`),
      list: db.prepare(`SELECT * FROM jobs ORDER BY created_at DESC, id LIMIT ?`),
      unfinished: db.prepare(`SELECT * FROM jobs WHERE status IN ('queued', 'running') ORDER BY created_at, id`),
      pending: db.prepare(`SELECT seq, id, path, offset, size, metadata FROM job_items WHERE job_id = ? AND state = 'pending' AND seq > ? ORDER BY seq LIMIT ?`),
      setItem: db.prepare(`UPDATE job_items SET state = ?, code = ?, message = ?, duplicate_of = ? WHERE job_id = ? AND seq = ? AND state = 'pending'`),
      status: db.prepare(
        `UPDATE jobs SET status = ?, error = ?, started_at = COALESCE(started_at, ?), finished_at = ? WHERE id = ? AND status NOT IN ('done', 'failed', 'cancelled')`,
      ),
      report: db.prepare(
        `SELECT seq, id, path, state, code, message, duplicate_of FROM job_items WHERE job_id = ? AND state IN ('failed', 'duplicate') AND seq > ? ORDER BY seq LIMIT ?`,
      ),
    };
  }

  /**
   * Records a job and its plan: the plan in transactions of PLAN_CHUNK items with a turn of the event
   * loop between them (a million-item plan would otherwise stall the server for seconds), then the
   * job's row, which makes it visible, in one transaction with the removal of its planning marker.
   */
  async create(source: unknown, options: unknown, items: PlannedItem[]): Promise<JobRow> {
    const id = randomUUID();
    this.stmts.startPlan.run(id);
    const insert = this.db.transaction((start: number) =>
      items.slice(start, start + PLAN_CHUNK).forEach((it, i) => this.stmts.insertItem.run(id, start + i + 1, it.id, it.path, it.offset, it.size, JSON.stringify(it.metadata))),
    );
    for (let start = 0; start < items.length; start += PLAN_CHUNK) {
      insert(start);
      await yieldToEventLoop();
    }
    this.db.transaction(() => {
      this.stmts.insertJob.run(id, JSON.stringify(source), JSON.stringify(options), items.length, new Date().toISOString());
      this.stmts.endPlan.run(id);
    })();
    return this.get(id)!;
  }

  get(id: string): JobRow | undefined {
    const r = this.stmts.get.get(id) as RawJob | undefined;
    return r && toJob(r);
  }

  list(limit: number): JobRow[] {
    return (this.stmts.list.all(limit) as RawJob[]).map(toJob);
  }

  unfinished(): JobRow[] {
    return (this.stmts.unfinished.all() as RawJob[]).map(toJob);
  }

  pending(jobId: string, afterSeq: number, limit: number): PendingItem[] {
    return (this.stmts.pending.all(jobId, afterSeq, limit) as Array<Omit<PendingItem, 'metadata'> & { metadata: string }>).map((r) => ({
      ...r,
      metadata: JSON.parse(r.metadata),
    }));
  }

  /** Writes item outcomes and bumps the job's counters; call inside the catalogue transaction. */
  recordOutcomes(jobId: string, outcomes: ItemOutcome[]): void {
    const counts: Record<string, number> = {};
    for (const o of outcomes) {
      const changed = this.stmts.setItem.run(o.state, o.code ?? null, o.message ?? null, o.duplicateOf ?? null, jobId, o.seq).changes;
      if (changed) counts[COUNTER[o.state]] = (counts[COUNTER[o.state]] ?? 0) + 1;
    }
    const cols = Object.keys(counts);
    if (cols.length === 0) return;
    // Column names come from the fixed COUNTER table, never from input.
    this.db.prepare(`UPDATE jobs SET ${cols.map((c) => `${c} = ${c} + ?`).join(', ')} WHERE id = ?`).run(...cols.map((c) => counts[c]), jobId);
  }

  /** Returns whether the status changed (a job that has ended keeps its status). */
  setStatus(jobId: string, status: JobStatus, error: string | null = null): boolean {
    const now = new Date().toISOString();
    return this.stmts.status.run(status, error, status === 'running' ? now : null, FINAL_STATUSES.includes(status) ? now : null, jobId).changes > 0;
  }

  /** Failed and duplicate items, paged by seq. */
  report(jobId: string, afterSeq: number, limit: number): FailureRow[] {
    return (this.stmts.report.all(jobId, afterSeq, limit) as Array<Omit<FailureRow, 'duplicateOf'> & { duplicate_of: string | null }>).map((r) => ({
      seq: r.seq,
      id: r.id,
      path: r.path,
      state: r.state,
      code: r.code,
      message: r.message,
      duplicateOf: r.duplicate_of,
    }));
  }
}
