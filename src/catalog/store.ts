/**
 * Store: the async seam between the serving rules (CatalogService, IngestRunner, CatalogEvaluator)
 * and where items, vectors and ingest jobs live. Two implementations:
 * - SqliteStore (default): the embedded SQLite catalogue + the hnswlib index derived from it;
 * - PostgresStore: one PostgreSQL table with a pgvector HNSW index; servers hold no state, so any
 *   number of replicas can share one database.
 * The rules stay in the services; a store only answers queries, so one contract suite covers both.
 */
import { badRequest } from '../errors';
import type { StoredImage } from '../images/thumbnail';
import type { Alias, Item, MetadataFilter, MetadataUpdate, NewAlias, NewItem, Page, SameBytes, UpsertResult } from './catalog';
import type { ImageKind, ItemImageSet } from './item-images';
import type { FailureRow, ItemOutcome, JobRow, JobStatus, PendingItem, PlannedItem } from './jobs';
import type { Neighbour } from '../index/vector-index';

export interface StoreStats {
  items: number;
  /** Items embedded by the given model (searchable now). */
  itemsForModel: number;
  /** Ids linked to items (not counted in `items`). */
  aliases: number;
  /** Vectors the search index holds. */
  indexed: number;
  seq: number;
}

export interface SearchOptions {
  /** Only items whose metadata has every field of `filter` equal. */
  filter?: MetadataFilter;
  /** Search beam width for this query (HNSW ef_search); the store's default otherwise. */
  ef?: number;
}

/** One change for a derived index, in catalogue order. */
export interface IndexChange {
  seq: number;
  add?: { label: number; vector: Float32Array };
  remove?: number;
}

export const toIndexChange = ({ item, replacedLabel }: UpsertResult): IndexChange => ({
  seq: item.seq,
  remove: replacedLabel,
  add: { label: item.label, vector: item.vector },
});

/** Writes that commit together: the catalogue rows of a bulk chunk, their images and its job outcomes. */
export interface StoreTx {
  getById(id: string): Promise<Item | undefined>;
  idsBySha256(sha256: string, limit: number): Promise<string[]>;
  upsertMany(items: NewItem[]): Promise<UpsertResult[]>;
  /**
   * Makes `alias.id` another name for `alias.target`. An item stored under that id is removed (and
   * returned as an index change); storing an item under it later ends the alias.
   */
  link(alias: NewAlias): Promise<IndexChange | undefined>;
  /**
   * Adds the images to the row of `sha256` (kinds not given are left as they are). Call after the
   * item's upsert: replacing an item releases its old bytes' images, possibly these.
   */
  putImages(sha256: string, images: ItemImageSet): Promise<void>;
  /**
   * Replaces the metadata of item `id` (or, without `where`, of alias `id`) with `update(current)`,
   * in place: vector, label and stored images stay, so nothing is embedded or re-indexed. With `where`,
   * only an item that still has those bytes and model. Returns whether a row was updated.
   */
  updateMetadata(id: string, update: MetadataUpdate, where?: SameBytes): Promise<boolean>;
  /**
   * Of `keys`, those whose lease `owner` still holds (locking them until commit), so a chunk whose
   * lease expired and was reclaimed by another replica is not written twice.
   */
  holdLeases(jobId: string, owner: string, keys: number[]): Promise<Set<number>>;
  /** Writes item outcomes and bumps the job's counters (only for items still claimed by `owner`). */
  recordOutcomes(jobId: string, owner: string, outcomes: ItemOutcome[]): Promise<void>;
}

/** Ingest jobs: the plan, leases on batches of items, outcomes and progress. */
export interface JobQueue {
  create(source: unknown, options: unknown, items: PlannedItem[]): Promise<JobRow>;
  get(id: string): Promise<JobRow | undefined>;
  list(limit: number): Promise<JobRow[]>;
  unfinished(): Promise<JobRow[]>;
  /**
   * Claims up to `limit` unfinished items of a job for `owner` until `leaseMs` from now: pending
   * items, and claimed items whose lease expired (their owner died). Lowest keys first. None once
   * the job has ended (a cancelled job's pending items stay unclaimed).
   */
  claim(jobId: string, owner: string, limit: number, leaseMs: number): Promise<PendingItem[]>;
  /** Hands `owner`'s claimed, unfinished items back (graceful stop). */
  release(jobId: string, owner: string): Promise<void>;
  /** Marks the job done when no item is left pending or claimed; returns whether it did. */
  finishIfComplete(jobId: string): Promise<boolean>;
  /** Sets a job's status, unless it has already ended (done, failed, cancelled: those are final). */
  setStatus(jobId: string, status: JobStatus, error?: string | null): Promise<void>;
  /**
   * Ends a queued or running job as 'cancelled' (items already stored stay; the rest stay pending and
   * are never claimed); the job as it now is, or undefined if there is none.
   */
  cancel(jobId: string): Promise<JobRow | undefined>;
  report(jobId: string, afterSeq: number, limit: number): Promise<FailureRow[]>;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  readonly jobs: JobQueue;
  /** Adds or replaces one item with its stored images, in one transaction; resolves once committed and searchable. */
  upsert(item: NewItem, images?: ItemImageSet): Promise<UpsertResult>;
  /** Deletes an item and the aliases linked to it; undefined when no item has that id. */
  delete(id: string): Promise<{ aliases: number } | undefined>;
  getById(id: string): Promise<Item | undefined>;
  getAlias(id: string): Promise<Alias | undefined>;
  /** Returns false when `id` was not an alias. */
  deleteAlias(id: string): Promise<boolean>;
  /** Alias ids (sorted) of each target id that has any. */
  aliasesOf(targets: string[]): Promise<Map<string, string[]>>;
  /** Alias ids whose bytes hash to `sha256`, sorted, at most `limit`. */
  aliasIdsBySha256(sha256: string, limit: number): Promise<string[]>;
  /** Stored image bytes of the item bytes hashing to `sha256`. */
  getImage(sha256: string, kind: ImageKind): Promise<StoredImage | undefined>;
  hasImage(sha256: string, kind: ImageKind): Promise<boolean>;
  getByLabels(labels: number[]): Promise<Map<number, Item>>;
  list(opts: { cursor?: string; limit: number }): Promise<Page>;
  /** Ids of items whose bytes hash to `sha256` (exact duplicates), oldest first, at most `limit`. */
  idsBySha256(sha256: string, limit: number): Promise<string[]>;
  /** Up to k nearest items of the served model by cosine similarity, best first. */
  search(query: Float32Array, k: number, opts?: SearchOptions): Promise<Neighbour[]>;
  stats(modelId: string): Promise<StoreStats>;
  /** Every item of `modelId` in label order, in chunks (evaluation, exact search). */
  itemsOf(modelId: string, chunk: number): AsyncIterable<Item[]>;
  /**
   * Runs `fn` in one transaction; everything it writes commits together or not at all. `indexChanges`
   * names the committed changes a separate search index must apply (ignored where the database
   * indexes itself); they are applied before any other write commits, so the index always holds a
   * prefix of the committed changes and a snapshot never claims one it lacks.
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>, indexChanges?: (result: T) => IndexChange[]): Promise<T>;
  /** Persists derived state and releases connections. */
  close(): Promise<void>;
}

/**
 * Text every store can hold: PostgreSQL's text and jsonb refuse NUL characters and lone surrogates
 * (SQLite keeps them), so metadata and filter values are held to this everywhere.
 */
export const storableText = (s: string): boolean => !s.includes('\u0000') && s.isWellFormed();

/** Field names usable in filters: plain keys only, so every store can put them into its query safely. */
const FILTER_FIELD = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The filter's meaning outside a store's query: every field present and equal (strict: `true` does not
 * match 1, as in PostgreSQL's jsonb containment). Used where a store has no query to push it into.
 */
export function metadataMatches(metadata: Record<string, unknown>, filter: MetadataFilter): boolean {
  return Object.entries(filter).every(([k, v]) => Object.hasOwn(metadata, k) && metadata[k] === v);
}

/**
 * Checks a filter's field names before a search starts, so both stores refuse a bad name with the
 * same 400. (A throw inside the embedded index's native filter callback is caught and rethrown by
 * HnswIndex.search, which is what keeps the process alive.)
 */
export function checkFilter(filter: MetadataFilter | undefined): MetadataFilter | undefined {
  if (!filter || Object.keys(filter).length === 0) return undefined;
  for (const k of Object.keys(filter)) {
    if (!FILTER_FIELD.test(k)) throw badRequest('BAD_FILTER', `filter field '${k.slice(0, 80)}' must match ${FILTER_FIELD}`);
    const v = filter[k];
    // Stored metadata cannot hold these (validateMetadata), and PostgreSQL refuses them as parameters.
    if (typeof v === 'string' && !storableText(v)) throw badRequest('BAD_FILTER', `filter value of '${k}' must be well-formed unicode without NUL characters`);
  }
  return filter;
}
