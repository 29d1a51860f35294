/**
 * HNSW index (Malkov & Yashunin 2018, arXiv:1603.09320) over hnswlib-node, cosine space.
 *
 * Deleted labels are only marked in hnswlib; `allowReplaceDeleted` lets new points reuse their slots so
 * the file does not grow without bound under churn. Reusing a slot costs 7-11x a plain insert
 * (hnswlib repairs the old point's neighbourhood: bench/manifest-update), so new points take free
 * capacity first and reuse slots only once a full index is at least REUSE_FRACTION deleted.
 * hnswlib cannot say which stored labels are deleted, so we track live labels ourselves; after a load
 * the caller reconciles them with the catalogue (`retainOnly`).
 */
import { HierarchicalNSW } from 'hnswlib-node';
import * as fs from 'node:fs';
import { checkVector, cosineFromDistance, Neighbour, VectorIndex } from './vector-index';

export interface HnswOptions {
  /** Graph degree: higher is more accurate and larger. */
  m: number;
  efConstruction: number;
  /** Search beam width (>= k is enforced per query). */
  efSearch: number;
  initialCapacity: number;
  seed: number;
}

/** Share of a full index's slots that must be deleted before new points reuse them instead of growing it. */
export const REUSE_FRACTION = 0.25;

export const DEFAULT_HNSW: HnswOptions = { m: 16, efConstruction: 200, efSearch: 64, initialCapacity: 1024, seed: 100 };

/**
 * Vector dimension recorded in an hnswlib file header: six size_t fields (offsetLevel0, maxElements,
 * curCount, sizeDataPerElement, labelOffset, offsetData); the vector occupies labelOffset - offsetData bytes.
 */
function storedDimension(file: string): number {
  const fd = fs.openSync(file, 'r');
  try {
    const header = Buffer.alloc(48);
    if (fs.readSync(fd, header, 0, 48, 0) !== 48) throw new Error(`index file ${file} is truncated`);
    const labelOffset = Number(header.readBigUInt64LE(32));
    const offsetData = Number(header.readBigUInt64LE(40));
    return (labelOffset - offsetData) / Float32Array.BYTES_PER_ELEMENT;
  } finally {
    fs.closeSync(fd);
  }
}

export class HnswIndex implements VectorIndex {
  private readonly live = new Set<number>();
  /** The largest label hnswlib may hold: a label above it is new (catalogue labels only grow). */
  private maxLabel = -Infinity;

  private constructor(
    readonly dim: number,
    private readonly hnsw: HierarchicalNSW,
    private readonly opts: HnswOptions,
  ) {
    hnsw.setEf(opts.efSearch);
  }

  static create(dim: number, opts: Partial<HnswOptions> = {}): HnswIndex {
    const o = { ...DEFAULT_HNSW, ...opts };
    const h = new HierarchicalNSW('cosine', dim);
    h.initIndex({ maxElements: Math.max(16, o.initialCapacity), m: o.m, efConstruction: o.efConstruction, randomSeed: o.seed, allowReplaceDeleted: true });
    return new HnswIndex(dim, h, o);
  }

  /**
   * Reads a file written by `save`. `deleted`: the labels that were deleted when it was saved (see
   * `deletedLabels`); hnswlib keeps them in its id list, so they must be named to stay deleted.
   */
  static async load(file: string, dim: number, opts: Partial<HnswOptions> = {}, deleted: Iterable<number> = []): Promise<HnswIndex> {
    const o = { ...DEFAULT_HNSW, ...opts };
    // hnswlib trusts the caller's dimension and would read a mismatched file as garbage: check first.
    const fileDim = storedDimension(file);
    if (fileDim !== dim) throw new Error(`index file ${file} has ${fileDim} dimensions, expected ${dim}`);
    const h = new HierarchicalNSW('cosine', dim);
    await h.readIndex(file, true);
    const index = new HnswIndex(dim, h, o);
    const gone = new Set(deleted);
    for (const label of h.getIdsList()) {
      if (!gone.has(label)) index.live.add(label);
      index.maxLabel = Math.max(index.maxLabel, label);
    }
    return index;
  }

  /** Labels the saved file still holds but marked deleted: `load` needs them back. */
  deletedLabels(): number[] {
    return this.hnsw.getIdsList().filter((label) => !this.live.has(label));
  }

  size(): number {
    return this.live.size;
  }

  has(label: number): boolean {
    return this.live.has(label);
  }

  labels(): IterableIterator<number> {
    return this.live.values();
  }

  add(label: number, vector: Float32Array): void {
    checkVector(vector, this.dim);
    const point = Array.from(vector);
    // A live label, or a deleted one coming back, is updated in its own slot (hnswlib keeps one copy
    // per label; given a reused slot instead, its old slot would keep the label, and reusing that slot
    // later would drop the label from hnswlib's lookup while the point is live).
    if (this.live.has(label) || (label <= this.maxLabel && this.revive(label))) {
      this.hnsw.addPoint(point, label, false);
      this.live.add(label);
      return;
    }
    let reuse = false;
    if (this.hnsw.getCurrentCount() >= this.hnsw.getMaxElements()) {
      const capacity = this.hnsw.getMaxElements();
      const deleted = this.hnsw.getCurrentCount() - this.live.size;
      reuse = deleted > 0 && deleted >= REUSE_FRACTION * capacity;
      // Grow geometrically; a resize copies the graph, so doubling keeps the amortised cost low.
      // A loaded index has capacity == its count (hnswlib's readIndex), possibly 0: never double 0.
      if (!reuse) this.hnsw.resizeIndex(Math.max(this.opts.initialCapacity, capacity * 2));
    }
    this.hnsw.addPoint(point, label, reuse);
    this.live.add(label);
    this.maxLabel = Math.max(this.maxLabel, label);
  }

  /** Unmarks a deleted label hnswlib still holds; false when it holds none (never added, or its slot was reused). */
  private revive(label: number): boolean {
    try {
      this.hnsw.unmarkDelete(label);
      return true;
    } catch {
      return false;
    }
  }

  /** Slots the index holds now (live, deleted, free): its memory is proportional to this. */
  capacity(): number {
    return this.hnsw.getMaxElements();
  }

  remove(label: number): void {
    if (!this.live.has(label)) return;
    // hnswlib first: if it refused, the label would be gone from `live` but still found by searches.
    this.hnsw.markDelete(label);
    this.live.delete(label);
  }

  /** Marks every label not in `keep` as deleted (reconciliation after a load). */
  retainOnly(keep: (label: number) => boolean): number {
    let removed = 0;
    for (const label of [...this.live]) {
      if (!keep(label)) {
        this.remove(label);
        removed++;
      }
    }
    return removed;
  }

  search(query: Float32Array, k: number, accept?: (label: number) => boolean): Neighbour[] {
    checkVector(query, this.dim);
    const n = Math.min(k, this.live.size);
    if (n <= 0) return [];
    this.hnsw.setEf(Math.max(this.opts.efSearch, n));
    // An exception thrown inside hnswlib's native filter callback aborts the whole process, so the
    // filter never throws: the first error stops accepting and is rethrown once the search returns.
    let failure: { error: unknown } | undefined;
    const guarded = accept
      ? (label: number): boolean => {
          if (failure) return false;
          try {
            return accept(label);
          } catch (error) {
            failure = { error };
            return false;
          }
        }
      : undefined;
    const res = this.hnsw.searchKnn(Array.from(query), n, guarded);
    if (failure) throw failure.error;
    // hnswlib's cosine space returns 1 - cos.
    return res.neighbors.map((label, i) => ({ label, score: cosineFromDistance(res.distances[i]) }));
  }

  setEfSearch(ef: number): void {
    this.opts.efSearch = ef;
  }

  get efSearch(): number {
    return this.opts.efSearch;
  }

  /** Writes the index to `file` atomically (temp file, fsync, rename). Must not run concurrently with add/remove. */
  async save(file: string): Promise<void> {
    const tmp = `${file}.tmp-${process.pid}`;
    await this.hnsw.writeIndex(tmp);
    const fd = fs.openSync(tmp, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  }
}
