/**
 * One process at a time per embedded data dir. The HNSW index lives in the memory of the process that
 * opened the catalogue, so a second process writing the same files (`likeness index` while `likeness
 * serve` runs) would add items the server's index never sees, and both would write index snapshots.
 * The lock is SQLite's own file lock on a small file, held in exclusive locking mode: the operating
 * system drops it when the process ends, kill -9 included, so a crash never leaves a stale lock.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const LOCK_FILE = 'likeness.lock';

export class DataDirInUseError extends Error {
  constructor(readonly dataDir: string) {
    super(
      `the data dir ${dataDir} is in use by another likeness process (a server, or an index or search command); ` +
        'stop it first, or use the running server (POST /v1/search, POST /v1/items, POST /v1/ingest)',
    );
    this.name = 'DataDirInUseError';
  }
}

export class DataDirLock {
  private constructor(private readonly db: Database.Database) {}

  /** Takes the lock at once or throws DataDirInUseError: it never waits for another process. */
  static acquire(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const db = new Database(path.join(dataDir, LOCK_FILE));
    try {
      db.pragma('busy_timeout = 0');
      db.pragma('locking_mode = EXCLUSIVE');
      // An exclusive write lock, kept after COMMIT in this locking mode until the connection closes.
      db.exec('BEGIN EXCLUSIVE; COMMIT');
      return new DataDirLock(db);
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new DataDirInUseError(dataDir);
      throw err;
    }
  }

  release(): void {
    if (this.db.open) this.db.close();
  }
}
