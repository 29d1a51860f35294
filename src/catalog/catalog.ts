/**
 * The catalogue: the source of truth for items. The vector index is derived from it.
 * Labels are assigned by the catalogue, increase monotonically and are never reused: replacing an
 * item gives it a new label, so a label always names one immutable vector.
 */
export type Metadata = Record<string, unknown>;
export type MetadataFilter = Record<string, string | number | boolean>;

export interface Item {
  label: number;
  id: string;
  metadata: Metadata;
  sha256: string | null;
  modelId: string;
  vector: Float32Array;
  /** Catalogue sequence number of the write that produced this row. */
  seq: number;
  createdAt: string;
}

export interface NewItem {
  id: string;
  metadata: Metadata;
  sha256: string | null;
  modelId: string;
  vector: Float32Array;
}

export interface UpsertResult {
  item: Item;
  /** Label of the row this one replaced, if the id existed. */
  replacedLabel?: number;
}

export interface Page {
  items: Item[];
  /** Opaque cursor for the next page; undefined on the last page. */
  next?: string;
}

export interface CatalogStats {
  items: number;
  /** Items embedded by the given model (searchable now). */
  itemsForModel: number;
  seq: number;
}

export interface Catalog {
  upsert(item: NewItem): UpsertResult;
  /** Adds many items in one transaction (bulk ingest); same semantics as upsert for each. */
  upsertMany(items: NewItem[]): UpsertResult[];
  /** Returns the deleted label and the change's sequence, or undefined when the id was unknown. */
  delete(id: string): { label: number; seq: number } | undefined;
  getById(id: string): Item | undefined;
  getByLabels(labels: number[]): Map<number, Item>;
  list(opts: { cursor?: string; limit: number }): Page;
  stats(modelId: string): CatalogStats;
  /** Items of `modelId` written after `seq`, in label order, in chunks (for index replay). */
  itemsSince(seq: number, modelId: string, chunk: number): Iterable<Item[]>;
  /** Labels deleted (or replaced) after `seq`. */
  removedSince(seq: number): number[];
  /** Forgets removal records covered by an index snapshot. */
  pruneRemovedUpTo(seq: number): void;
  /** Ids of items whose bytes hash to `sha256` (exact duplicates), at most `limit`. */
  idsBySha256(sha256: string, limit: number): string[];
  /** Runs `fn` in one transaction: everything it writes commits together or not at all. */
  transaction<T>(fn: () => T): T;
  /** True when the item with `label` has every field of `filter` equal. */
  matches(label: number, filter: MetadataFilter): boolean;
  close(): void;
}
