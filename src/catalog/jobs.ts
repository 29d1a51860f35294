/**
 * Ingest jobs as every store sees them: the job, its planned items and their outcomes. SQLite
 * (sqlite-jobs.ts) and PostgreSQL (postgres/pg-jobs.ts) keep them in their own tables.
 */

export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** Statuses a job never leaves: no replica may reopen or relabel a job that ended. */
export const FINAL_STATUSES: readonly JobStatus[] = ['done', 'failed', 'cancelled'];
export type ItemState = 'pending' | 'added' | 'unchanged' | 'duplicate' | 'failed';

export interface JobRow {
  id: string;
  source: unknown;
  options: unknown;
  status: JobStatus;
  total: number;
  added: number;
  unchanged: number;
  duplicates: number;
  failed: number;
  error: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface PlannedItem {
  id: string;
  path: string;
  /** Byte range inside an archive (tar), else null. */
  offset: number | null;
  size: number | null;
  metadata: Record<string, unknown>;
}

export interface PendingItem extends PlannedItem {
  seq: number;
}

export interface ItemOutcome {
  seq: number;
  state: Exclude<ItemState, 'pending'>;
  code?: string;
  message?: string;
  duplicateOf?: string;
}

export interface FailureRow {
  seq: number;
  id: string;
  path: string;
  state: ItemState;
  code: string | null;
  message: string | null;
  duplicateOf: string | null;
}

/**
 * A `jobs` table row as a database driver returns it: JSON columns as `J` (text in SQLite, parsed
 * jsonb in PostgreSQL), timestamps as `T` (ISO text in SQLite, Date in PostgreSQL).
 */
export interface RawJobRow<J, T> {
  id: string;
  source: J;
  options: J;
  status: JobStatus;
  total: number;
  added: number;
  unchanged: number;
  duplicates: number;
  failed: number;
  error: string | null;
  created_at: T;
  started_at: T | null;
  finished_at: T | null;
}

/** One mapping from a row to the API's JobRow, with the store's own JSON and time decoding. */
export function toJobRow<J, T>(r: RawJobRow<J, T>, json: (v: J) => unknown, time: (t: T) => string): JobRow {
  const maybe = (t: T | null): string | null => (t === null ? null : time(t));
  return {
    id: r.id,
    source: json(r.source),
    options: json(r.options),
    status: r.status,
    total: r.total,
    added: r.added,
    unchanged: r.unchanged,
    duplicates: r.duplicates,
    failed: r.failed,
    error: r.error,
    createdAt: time(r.created_at),
    startedAt: maybe(r.started_at),
    finishedAt: maybe(r.finished_at),
  };
}
