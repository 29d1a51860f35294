/**
 * The embedded store (default): SqliteCatalog is the truth, IndexStore (hnswlib) the derived index,
 * SqliteJobStore the ingest jobs, all in one SQLite file. A thin async adapter over the synchronous
 * parts: their behaviour, durability rules and tests stay as they are.
 */
import type { IndexStore } from '../index/index-store';
import type { Neighbour } from '../index/vector-index';
import type { StoredImage } from '../images/thumbnail';
import type { Alias, Item, NewItem, Page, UpsertResult } from './catalog';
import type { DataDirLock } from './data-dir-lock';
import type { ImageKind, ItemImageSet } from './item-images';
import type { SqliteCatalog } from './sqlite-catalog';
import { SqliteImageStore } from './sqlite-images';
import { SqliteJobStore } from './sqlite-jobs';
import { FINAL_STATUSES } from './jobs';
import type { FailureRow, ItemOutcome, JobRow, JobStatus, PendingItem, PlannedItem } from './jobs';
import { checkFilter, toIndexChange } from './store';
import type { IndexChange, JobQueue, SearchOptions, Store, StoreStats, StoreTx } from './store';

/** One process owns the file, so a "lease" is a cursor: items up to it were handed out already. */
class SqliteJobQueue implements JobQueue {
  private readonly handedOut = new Map<string, number>();

  constructor(readonly jobs: SqliteJobStore) {}

  async create(source: unknown, options: unknown, items: PlannedItem[]): Promise<JobRow> {
    return this.jobs.create(source, options, items);
  }

  async get(id: string): Promise<JobRow | undefined> {
    return this.jobs.get(id);
  }

  async list(limit: number): Promise<JobRow[]> {
    return this.jobs.list(limit);
  }

  async unfinished(): Promise<JobRow[]> {
    return this.jobs.unfinished();
  }

  async claim(jobId: string, _owner: string, limit: number): Promise<PendingItem[]> {
    const job = this.jobs.get(jobId);
    if (!job || FINAL_STATUSES.includes(job.status)) return [];
    const items = this.jobs.pending(jobId, this.handedOut.get(jobId) ?? 0, limit);
    if (items.length) this.handedOut.set(jobId, items[items.length - 1].seq);
    return items;
  }

  async finishIfComplete(jobId: string): Promise<boolean> {
    this.handedOut.delete(jobId);
    if (this.jobs.pending(jobId, 0, 1).length > 0) return false;
    return this.jobs.setStatus(jobId, 'done');
  }

  /** A stopped run hands its unfinished items back (they are still 'pending' in the file). */
  async release(jobId: string): Promise<void> {
    this.handedOut.delete(jobId);
  }

  async setStatus(jobId: string, status: JobStatus, error: string | null = null): Promise<void> {
    this.jobs.setStatus(jobId, status, error);
  }

  async cancel(jobId: string): Promise<JobRow | undefined> {
    this.jobs.setStatus(jobId, 'cancelled');
    return this.jobs.get(jobId);
  }

  async report(jobId: string, afterSeq: number, limit: number): Promise<FailureRow[]> {
    return this.jobs.report(jobId, afterSeq, limit);
  }
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly jobs: SqliteJobQueue;
  /**
   * Writes are serialised: a bulk transaction spans awaits (BEGIN ... COMMIT on the one connection),
   * and a single add arriving meanwhile must not land inside it.
   */
  private writes: Promise<unknown> = Promise.resolve();
  private readonly images: SqliteImageStore;

  constructor(
    readonly catalog: SqliteCatalog,
    readonly index: IndexStore,
    /** Held until close: one process per data dir. */
    readonly lock?: DataDirLock,
  ) {
    this.jobs = new SqliteJobQueue(new SqliteJobStore(catalog.database));
    this.images = new SqliteImageStore(catalog.database);
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writes.then(fn, fn);
    this.writes = run.catch(() => undefined);
    return run;
  }

  upsert(item: NewItem, images?: ItemImageSet): Promise<UpsertResult> {
    return this.serialised(async () => {
      const result = this.catalog.transaction(() => {
        const written = this.catalog.upsert(item);
        // After the upsert: replacing the item released its old bytes' images (a trigger), possibly these.
        if (images && item.sha256) this.images.put(item.sha256, images);
        return written;
      });
      const { seq, ...change } = toIndexChange(result);
      this.index.apply(seq, change);
      return result;
    });
  }

  delete(id: string): Promise<{ aliases: number } | undefined> {
    return this.serialised(async () => {
      const removed = this.catalog.delete(id);
      if (!removed) return undefined;
      this.index.apply(removed.seq, { remove: removed.label });
      return { aliases: removed.aliases };
    });
  }

  async getAlias(id: string): Promise<Alias | undefined> {
    return this.catalog.getAlias(id);
  }

  deleteAlias(id: string): Promise<boolean> {
    return this.serialised(async () => this.catalog.deleteAlias(id));
  }

  async aliasesOf(targets: string[]): Promise<Map<string, string[]>> {
    return this.catalog.aliasesOf(targets);
  }

  async aliasIdsBySha256(sha256: string, limit: number): Promise<string[]> {
    return this.catalog.aliasIdsBySha256(sha256, limit);
  }

  async getImage(sha256: string, kind: ImageKind): Promise<StoredImage | undefined> {
    return this.images.get(sha256, kind);
  }

  async hasImage(sha256: string, kind: ImageKind): Promise<boolean> {
    return this.images.has(sha256, kind);
  }

  async getById(id: string): Promise<Item | undefined> {
    return this.catalog.getById(id);
  }

  async getByLabels(labels: number[]): Promise<Map<number, Item>> {
    return this.catalog.getByLabels(labels);
  }

  async list(opts: { cursor?: string; limit: number }): Promise<Page> {
    return this.catalog.list(opts);
  }

  async idsBySha256(sha256: string, limit: number): Promise<string[]> {
    return this.catalog.idsBySha256(sha256, limit);
  }

  async search(query: Float32Array, k: number, opts: SearchOptions = {}): Promise<Neighbour[]> {
    const { ef } = opts;
    const filter = checkFilter(opts.filter);
    const accept = filter ? this.catalog.matcher(filter) : undefined;
    if (ef === undefined) return this.index.search(query, k, accept);
    // Synchronous from here to the restore: no other search can observe the changed ef.
    const before = this.index.efSearch;
    this.index.setEfSearch(ef);
    try {
      return this.index.search(query, k, accept);
    } finally {
      this.index.setEfSearch(before);
    }
  }

  async stats(modelId: string): Promise<StoreStats> {
    return { ...this.catalog.stats(modelId), indexed: this.index.size() };
  }

  async *itemsOf(modelId: string, chunk: number): AsyncIterable<Item[]> {
    yield* this.catalog.itemsSince(0, modelId, chunk);
  }

  transaction<T>(fn: (tx: StoreTx) => Promise<T>, indexChanges?: (result: T) => IndexChange[]): Promise<T> {
    return this.serialised(async () => {
      const db = this.catalog.database;
      const tx: StoreTx = {
        getById: async (id) => this.catalog.getById(id),
        idsBySha256: async (sha256, limit) => this.catalog.idsBySha256(sha256, limit),
        upsertMany: async (items) => this.catalog.upsertMany(items),
        link: async (alias) => {
          const removed = this.catalog.link(alias);
          return removed && { seq: removed.seq, remove: removed.label };
        },
        putImages: async (sha256, images) => this.images.put(sha256, images),
        updateMetadata: async (id, update, where) => this.catalog.updateMetadata(id, update, where),
        holdLeases: async (_jobId, _owner, keys) => new Set(keys),
        recordOutcomes: async (jobId, _owner, outcomes: ItemOutcome[]) => this.jobs.jobs.recordOutcomes(jobId, outcomes),
      };
      // better-sqlite3 nests its own transactions (upsertMany) as savepoints inside this one.
      db.exec('BEGIN IMMEDIATE');
      let out: T;
      try {
        out = await fn(tx);
        db.exec('COMMIT');
      } catch (err) {
        if (db.inTransaction) db.exec('ROLLBACK');
        this.catalog.discardPending();
        throw err;
      }
      this.catalog.settle();
      // Still inside the serialised section: a single write that committed while a bulk chunk's changes
      // were being applied would move the index's sequence past changes it does not hold yet.
      if (indexChanges) await this.index.applyMany(indexChanges(out));
      return out;
    });
  }

  async close(): Promise<void> {
    await this.writes;
    await this.index.snapshot();
    this.catalog.close();
    this.lock?.release();
  }
}
