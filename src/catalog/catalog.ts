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

/** Another id for an item's exact bytes (ingest with `duplicates: link`); it has no vector of its own. */
export interface Alias {
  id: string;
  /** Id of the item holding the bytes and the vector. */
  target: string;
  sha256: string | null;
  metadata: Metadata;
  createdAt: string;
}

export type NewAlias = Omit<Alias, 'createdAt'>;

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
  /** Ids linked to items (not counted in `items`). */
  aliases: number;
  seq: number;
}

/** New metadata from the stored one (a merge patch, or a manifest row's values); may throw to refuse. */
export type MetadataUpdate = (current: Metadata) => Metadata;

/** The bytes and model an item must still have for a metadata update meant for it. */
export interface SameBytes {
  sha256: string;
  modelId: string;
}

export interface Catalog {
  upsert(item: NewItem): UpsertResult;
  /** Adds many items in one transaction (bulk ingest); same semantics as upsert for each. */
  upsertMany(items: NewItem[]): UpsertResult[];
  /** Returns the deleted label, the change's sequence and how many aliases went with it; undefined when the id was unknown. */
  delete(id: string): { label: number; seq: number; aliases: number } | undefined;
  /**
   * Makes `alias.id` another name for `alias.target`. An item stored under that id is removed (its
   * label and the change's sequence are returned for the index); storing an item under it later ends the alias.
   */
  link(alias: NewAlias): { label: number; seq: number } | undefined;
  /** See StoreTx.updateMetadata. */
  updateMetadata(id: string, update: MetadataUpdate, where?: SameBytes): boolean;
  getAlias(id: string): Alias | undefined;
  /** Returns false when `id` was not an alias. */
  deleteAlias(id: string): boolean;
  /** Alias ids of each target id that has any. */
  aliasesOf(targets: string[]): Map<string, string[]>;
  aliasIdsBySha256(sha256: string, limit: number): string[];
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
  /** A test of labels against `filter` (checked once): true when the item has every field of it equal. */
  matcher(filter: MetadataFilter): (label: number) => boolean;
  close(): void;
}
