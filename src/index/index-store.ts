/**
 * Keeps the HNSW index in step with the catalogue and persists it as snapshots.
 *
 * The catalogue is the truth; the index is derived. A snapshot is `index.bin` (written to a temp
 * file, fsynced, renamed) plus `snapshot.json` naming the model, dimension, catalogue sequence it
 * covers and the file's sha256. On open: load the snapshot and replay what changed after its sequence;
 * rebuild from the catalogue when the snapshot is missing, corrupt, stale beyond repair, or was built
 * by another model.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Catalog } from '../catalog/catalog';
import { writeFileAtomic } from '../model/fs-io';
import { HnswIndex, HnswOptions } from './hnsw-index';
import type { Neighbour } from './vector-index';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

export const INDEX_FILE = 'index.bin';
export const SNAPSHOT_FILE = 'snapshot.json';
/** Catalogue rows fetched per step when rebuilding; the event loop gets a turn between steps. */
const REBUILD_CHUNK = 2000;
/** HNSW inserts between event-loop turns during bulk adds (each insert is ~0.1-1 ms). */
const APPLY_YIELD_EVERY = 32;

interface SnapshotInfo {
  modelId: string;
  dim: number;
  seq: number;
  size: number;
  sha256: string;
  /** Labels in index.bin that are marked deleted (hnswlib's file does not say which). */
  deleted?: number[];
  writtenAt: string;
}

export interface IndexStoreOptions {
  dir: string;
  dim: number;
  modelId: string;
  catalog: Catalog;
  hnsw: Partial<HnswOptions>;
  /** Snapshot after this many changes (0 disables the automatic snapshot). */
  snapshotEvery: number;
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

export type OpenOutcome = 'loaded' | 'rebuilt';

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}


export class IndexStore {
  /** Highest catalogue sequence whose change is in the index. */
  private appliedSeq = 0;
  private changesSinceSnapshot = 0;
  private snapshotting: Promise<void> | undefined;
  /** Changes that arrived while a snapshot was being written (hnswlib must not change meanwhile). */
  private deferred: Array<() => void> = [];

  private constructor(
    private index: HnswIndex,
    private readonly opts: IndexStoreOptions,
    readonly outcome: OpenOutcome,
    readonly reason: string,
  ) {}

  static async open(opts: IndexStoreOptions): Promise<IndexStore> {
    const { dir, catalog, log } = opts;
    fs.mkdirSync(dir, { recursive: true });
    const loaded = await IndexStore.tryLoad(opts);
    if (loaded.store) {
      log('index snapshot loaded', { size: loaded.store.size(), seq: loaded.store.appliedSeq });
      return loaded.store;
    }
    log('rebuilding index from catalogue', { reason: loaded.reason });
    const index = HnswIndex.create(opts.dim, { ...opts.hnsw, initialCapacity: Math.max(1024, catalog.stats(opts.modelId).itemsForModel) });
    const store = new IndexStore(index, opts, 'rebuilt', loaded.reason);
    const seq = catalog.stats(opts.modelId).seq;
    for (const chunk of catalog.itemsSince(0, opts.modelId, REBUILD_CHUNK)) {
      for (const item of chunk) index.add(item.label, item.vector);
      await yieldToEventLoop();
    }
    store.appliedSeq = seq;
    await store.snapshot();
    log('index rebuilt', { size: index.size(), seq });
    return store;
  }

  private static async tryLoad(opts: IndexStoreOptions): Promise<{ store?: IndexStore; reason: string }> {
    const { dir, catalog, modelId, dim } = opts;
    const infoFile = path.join(dir, SNAPSHOT_FILE);
    const indexFile = path.join(dir, INDEX_FILE);
    if (!fs.existsSync(infoFile) || !fs.existsSync(indexFile)) return { reason: 'no snapshot' };
    let info: SnapshotInfo;
    try {
      info = JSON.parse(fs.readFileSync(infoFile, 'utf8')) as SnapshotInfo;
    } catch {
      return { reason: 'snapshot.json unreadable' };
    }
    if (info.deleted !== undefined && !(Array.isArray(info.deleted) && info.deleted.every(Number.isSafeInteger))) return { reason: 'snapshot.json lists deleted labels that are not integers' };
    if (info.modelId !== modelId) return { reason: `snapshot built by model ${info.modelId}, serving ${modelId}` };
    if (info.dim !== dim) return { reason: `snapshot has ${info.dim} dimensions, model has ${dim}` };
    const stats = catalog.stats(modelId);
    if (info.seq > stats.seq) return { reason: `snapshot covers sequence ${info.seq}, newer than the catalogue (${stats.seq})` };
    if ((await sha256File(indexFile)) !== info.sha256) return { reason: 'index file does not match its checksum (corrupt or truncated)' };
    let index: HnswIndex;
    try {
      index = await HnswIndex.load(indexFile, dim, opts.hnsw, info.deleted ?? []);
    } catch (err) {
      return { reason: `index file unreadable: ${(err as Error).message}` };
    }
    if (index.size() !== info.size) return { reason: `index holds ${index.size()} vectors, snapshot says ${info.size}` };
    const store = new IndexStore(index, opts, 'loaded', 'snapshot');
    // Replay: removals first (a replaced item's old label), then rows written after the snapshot.
    for (const label of catalog.removedSince(info.seq)) index.remove(label);
    for (const chunk of catalog.itemsSince(info.seq, modelId, REBUILD_CHUNK)) {
      for (const item of chunk) index.add(item.label, item.vector);
      await yieldToEventLoop();
    }
    store.appliedSeq = stats.seq;
    // Removal records are pruned only after a snapshot covers them, so a count mismatch means the
    // snapshot and catalogue disagree in a way replay cannot fix.
    if (index.size() !== stats.itemsForModel) {
      return { reason: `after replay the index holds ${index.size()} vectors, the catalogue ${stats.itemsForModel}` };
    }
    return { store, reason: 'snapshot' };
  }

  size(): number {
    return this.index.size();
  }

  get seq(): number {
    return this.appliedSeq;
  }

  search(query: Float32Array, k: number, accept?: (label: number) => boolean): Neighbour[] {
    return this.index.search(query, k, accept);
  }

  setEfSearch(ef: number): void {
    this.index.setEfSearch(ef);
  }

  get efSearch(): number {
    return this.index.efSearch;
  }

  /** Applies one committed catalogue change. `seq` is the change's catalogue sequence. */
  apply(seq: number, change: { add?: { label: number; vector: Float32Array }; remove?: number }): void {
    const run = (): void => {
      if (change.remove !== undefined) this.index.remove(change.remove);
      if (change.add) this.index.add(change.add.label, change.add.vector);
      this.appliedSeq = Math.max(this.appliedSeq, seq);
      this.changesSinceSnapshot++;
    };
    if (this.snapshotting) this.deferred.push(run);
    else run();
    if (this.opts.snapshotEvery > 0 && this.changesSinceSnapshot >= this.opts.snapshotEvery && !this.snapshotting) void this.snapshot();
  }

  /** Applies many committed changes, giving the event loop a turn every few inserts. */
  async applyMany(changes: Array<{ seq: number; add?: { label: number; vector: Float32Array }; remove?: number }>): Promise<void> {
    for (let i = 0; i < changes.length; i++) {
      const { seq, ...change } = changes[i];
      this.apply(seq, change);
      if (i % APPLY_YIELD_EVERY === APPLY_YIELD_EVERY - 1) await yieldToEventLoop();
    }
  }

  /** Writes a snapshot covering every applied change; concurrent calls share one write. */
  snapshot(): Promise<void> {
    if (this.snapshotting) return this.snapshotting;
    const run = async (): Promise<void> => {
      const { dir, modelId, dim, catalog, log } = this.opts;
      const seq = this.appliedSeq;
      const size = this.index.size();
      const deleted = this.index.deletedLabels();
      const indexFile = path.join(dir, INDEX_FILE);
      try {
        await this.index.save(indexFile);
        const info: SnapshotInfo = { modelId, dim, seq, size, sha256: await sha256File(indexFile), deleted, writtenAt: new Date().toISOString() };
        writeFileAtomic(path.join(dir, SNAPSHOT_FILE), JSON.stringify(info, null, 2));
        catalog.pruneRemovedUpTo(seq);
        this.changesSinceSnapshot = 0;
      } catch (err) {
        log('index snapshot failed', { error: (err as Error).message });
      } finally {
        this.snapshotting = undefined;
        for (const run of this.deferred.splice(0)) run();
      }
    };
    this.snapshotting = run();
    return this.snapshotting;
  }
}
