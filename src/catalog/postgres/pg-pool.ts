/**
 * The connection pool and its one retry. pg's Pool drops a connection that errors and opens a new
 * one on the next checkout, so after the database restarts the first statement on a dead connection
 * fails and the retry runs on a fresh one. A statement is retried once, only for connection-class
 * errors (never for constraint or syntax errors), after a short pause.
 */
import { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';

export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

/** Pause before the retry: long enough for a restarted server to accept connections again. */
const RETRY_DELAY_MS = 250;

/** SQLSTATE classes and socket errors that mean "the connection or the server went away". */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (typeof e?.code === 'string') {
    if (/^(08|57P0)/.test(e.code)) return true; // connection exception; admin/crash shutdown, cannot connect now
    if (['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN'].includes(e.code)) return true;
  }
  return /Connection terminated|connection ended|Client has encountered a connection error|not queryable/i.test(String(e?.message ?? ''));
}

export async function withRetry<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!isConnectionError(err)) throw err;
    await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
    return fn();
  }
}

export class PgPool implements Queryable {
  readonly pool: Pool;

  constructor(url: string, size: number, onError: (err: Error) => void) {
    this.pool = new Pool({ connectionString: url, max: size, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 });
    // An idle connection that dies (database restart) emits here; without a listener Node exits.
    this.pool.on('error', onError);
  }

  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>> {
    return withRetry(() => this.pool.query<R>(text, values));
  }

  /** Runs `fn` in a transaction on one connection; retried once as a whole if the connection failed. */
  transaction<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    return withRetry(async () => {
      const c = await this.pool.connect();
      let broken = false;
      // A checked-out connection that drops emits 'error' outside any query; the query that follows fails instead.
      const onError = (): void => {
        broken = true;
      };
      c.on('error', onError);
      try {
        await c.query('BEGIN');
        const out = await fn(c);
        await c.query('COMMIT');
        return out;
      } catch (err) {
        broken = isConnectionError(err);
        if (!broken) await c.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        // A broken connection is destroyed rather than returned to the pool.
        c.off('error', onError);
        c.release(broken);
      }
    });
  }

  /** One connection for several statements outside a transaction (migrations). */
  async withClient<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const c = await withRetry(() => this.pool.connect());
    let broken = false;
    const onError = (): void => {
      broken = true;
    };
    c.on('error', onError);
    try {
      return await fn(c);
    } finally {
      c.off('error', onError);
      c.release(broken);
    }
  }

  end(): Promise<void> {
    return this.pool.end();
  }
}
