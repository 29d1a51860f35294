/**
 * CatalogService: the rules of the serving flow. Routers and the CLI call it; it validates input,
 * embeds, writes the catalogue (the truth) and then the index (derived), and maps rows to results.
 */
import { createHash } from 'node:crypto';
import { badRequest, LikenessError, notFound } from '../errors';
import type { Embedder } from '../embed/embedder';
import { normalize } from '../index/vector-index';
import type { StoredImage } from '../images/thumbnail';
import type { Item, Metadata, MetadataFilter } from './catalog';
import type { ImageKind, ItemImages, ItemImageSet } from './item-images';
import { metadataMatches, storableText, toIndexChange } from './store';
import type { IndexChange, Store, StoreTx } from './store';

/**
 * What to do with an image whose exact bytes are already in the catalogue under another id: skip it
 * (report only), keep it as an item of its own, or link its id to the existing item (an alias).
 */
export type DuplicatePolicy = 'skip' | 'keep' | 'link';

export interface BulkInput {
  /** Caller's handle for the item (e.g. its position in an ingest job). */
  key: number;
  id: unknown;
  /** The bytes, or the error met while reading them. */
  image: Buffer | Error;
  metadata: unknown;
}

export interface Outcome {
  state: 'added' | 'unchanged' | 'duplicate' | 'failed';
  code?: string;
  message?: string;
  duplicateOf?: string;
}

/** Wall-clock seconds spent per bulk-add phase (phases of different chunks overlap). */
export interface PhaseTimings {
  read: number;
  decode: number;
  embed: number;
  commit: number;
  index: number;
}

export interface Prepared {
  key: number;
  id: string;
  metadata: Metadata;
  sha256: string;
  image?: Buffer;
  vector?: Float32Array;
  outcome?: Outcome;
  /** Thumbnail (and original) to store with the item. */
  images?: ItemImageSet;
  /** Bytes of an unchanged item that lacks its stored images (added before they were kept). */
  backfill?: Buffer;
  /** The item holds these bytes already, under other metadata: only the metadata is written. */
  metadataOnly?: boolean;
}

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** A JSON object: not null, not an array. */
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * JSON Merge Patch (RFC 7396, section 2): fields of `patch` replace those of `target`, null removes
 * a field, and objects merge recursively; anything that is not an object replaces the whole value.
 */
export function mergePatch(target: unknown, patch: unknown, depth = 0): unknown {
  if (!isObject(patch)) return patch;
  // Bounded before recursing: a patch nested 5,000 levels (30 KB of JSON) would overflow the stack.
  // The merged document is at least as deep, so validateMetadata would refuse it anyway.
  if (depth >= LIMITS.maxMetadataDepth) throw badRequest('BAD_METADATA', `metadata is nested more than ${LIMITS.maxMetadataDepth} levels deep`);
  // No prototype: a field named `__proto__` (JSON.parse makes it an own property) stays a field.
  const out: Record<string, unknown> = Object.assign(Object.create(null), isObject(target) ? target : {});
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v, depth + 1);
  }
  return out;
}

/** JSON with object keys sorted at every level: equal for equal metadata whatever the key order. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    isObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

function failure(err: unknown): Outcome {
  if (err instanceof LikenessError) return { state: 'failed', code: err.code, message: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return { state: 'failed', code: 'FILE_NOT_FOUND', message: e.message };
  return { state: 'failed', code: 'READ_FAILED', message: String(e.message ?? e) };
}

/** Limits on what a client controls. */
export const LIMITS = {
  maxK: 1000,
  defaultK: 10,
  maxPageSize: 1000,
  defaultPageSize: 100,
  maxIdLength: 512,
  maxMetadataBytes: 16 * 1024,
  maxMetadataDepth: 32,
  maxFilterFields: 16,
} as const;

export interface SearchQuery {
  image?: Uint8Array;
  vector?: number[];
  id?: string;
  k?: number;
  minScore?: number;
  filter?: MetadataFilter;
}

export interface SearchHit {
  id: string;
  score: number;
  metadata: Metadata;
  /** Other ids linked to this item's bytes (ingest with `duplicates: link`). */
  aliases?: string[];
}

export interface SearchResult {
  results: SearchHit[];
  /** For image queries: ids whose stored bytes are identical to the query ("already in the catalogue?"). */
  exactMatches?: string[];
  model: string;
  timing: { embedMs: number; searchMs: number; totalMs: number };
}

export interface ItemView {
  id: string;
  metadata: Metadata;
  sha256: string | null;
  model: string;
  createdAt: string;
  /** For an alias: the id of the item that holds its bytes and vector. */
  aliasOf?: string;
  /** For an item: other ids linked to its bytes. */
  aliases?: string[];
  /** The stored embedding, only when asked for. */
  vector?: number[];
}

export const toItemView = (item: Item, withVector = false): ItemView => ({
  id: item.id,
  metadata: item.metadata,
  sha256: item.sha256,
  model: item.modelId,
  createdAt: item.createdAt,
  ...(withVector ? { vector: Array.from(item.vector) } : {}),
});

const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export function validateId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0) throw badRequest('BAD_ID', 'id must be a non-empty string');
  if (id.length > LIMITS.maxIdLength) throw badRequest('BAD_ID', `id is ${id.length} characters; the limit is ${LIMITS.maxIdLength}`);
  if (CONTROL_CHARS.test(id)) throw badRequest('BAD_ID', 'id must not contain control characters');
  if (!id.isWellFormed()) throw badRequest('BAD_ID', 'id must be well-formed unicode');
  return id;
}

export function validateMetadata(metadata: unknown): Metadata {
  if (metadata === undefined || metadata === null) return {};
  if (!isObject(metadata)) throw badRequest('BAD_METADATA', 'metadata must be a JSON object');
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > LIMITS.maxMetadataBytes) throw badRequest('BAD_METADATA', `metadata is ${bytes} bytes; the limit is ${LIMITS.maxMetadataBytes}`);
  checkJsonValue(metadata, 0);
  return metadata;
}

/**
 * What every store can hold and query: SQLite's JSON functions fail on documents nested deeper than
 * 1000 levels (a stored item would then break every filtered search that reaches it), and PostgreSQL's
 * jsonb rejects NUL characters and lone surrogates.
 */
function checkJsonValue(value: unknown, depth: number): void {
  if (typeof value === 'string') {
    if (!storableText(value)) throw badRequest('BAD_METADATA', 'metadata strings must be well-formed unicode without NUL characters');
    return;
  }
  if (value === null || typeof value !== 'object') return;
  if (depth >= LIMITS.maxMetadataDepth) throw badRequest('BAD_METADATA', `metadata is nested more than ${LIMITS.maxMetadataDepth} levels deep`);
  for (const [k, v] of Object.entries(value)) {
    if (!Array.isArray(value)) checkJsonValue(k, depth);
    checkJsonValue(v, depth + 1);
  }
}

/** Neighbours examined per anchor when grouping near-duplicates. */
const DUPLICATE_NEIGHBOURS = 50;

function validateThreshold(t: number): void {
  if (!(Number.isFinite(t) && t > 0 && t <= 1)) throw badRequest('BAD_THRESHOLD', `threshold must be a number in (0, 1], got ${t}`);
}

function validateK(k: number | undefined): number {
  if (k === undefined) return LIMITS.defaultK;
  if (!Number.isInteger(k) || k < 1 || k > LIMITS.maxK) throw badRequest('BAD_K', `k must be an integer from 1 to ${LIMITS.maxK}, got ${k}`);
  return k;
}

/** Cosine similarity at or above which two catalogue images count as near-duplicates, unless the model says otherwise. */
export const DEFAULT_DUPLICATE_THRESHOLD = 0.95;

export class CatalogService {
  constructor(
    private readonly store: Store,
    private readonly embedder: Embedder,
    /** Thumbnails and originals; without it items keep only their vectors. */
    private readonly images?: ItemImages,
  ) {}

  /** The served model's near-duplicate threshold (its manifest's, else DEFAULT_DUPLICATE_THRESHOLD). */
  get duplicateThreshold(): number {
    return this.embedder.manifest.embedding.duplicateThreshold ?? DEFAULT_DUPLICATE_THRESHOLD;
  }

  get modelId(): string {
    return this.embedder.modelId;
  }

  /** Embeds and stores an image under `id`, replacing any item with that id. Resolves once committed. */
  async addItem(input: { id: unknown; image: Uint8Array; metadata?: unknown }): Promise<{ item: ItemView; replaced: boolean }> {
    const id = validateId(input.id);
    const metadata = validateMetadata(input.metadata);
    const vector = await this.embedder.embedImage(input.image);
    // Only once the image has proved valid and the server not too busy: a refused upload costs no thumbnail.
    const images = this.images?.enabled ? await this.images.make(input.image) : undefined;
    const sha256 = sha256Hex(input.image);
    const { item, replacedLabel } = await this.store.upsert({ id, metadata, sha256, modelId: this.modelId, vector }, images);
    return { item: toItemView(item), replaced: replacedLabel !== undefined };
  }

  /**
   * Bulk-add phase 1 (no writes): validates, hashes, classifies (unchanged / exact duplicate), decodes
   * in parallel and embeds in full batches. Per-item problems become outcomes, not exceptions, so one
   * bad file never sinks its batch. Phase 2 is `commitPrepared`, inside the caller's transaction.
   */
  async prepareMany(inputs: BulkInput[], duplicates: DuplicatePolicy, timings?: PhaseTimings): Promise<Prepared[]> {
    const firstBySha = new Map<string, string>();
    const prepared: Prepared[] = [];
    // Sequential: the exact-duplicate check must see the ids chosen earlier in this batch.
    for (const input of inputs) prepared.push(await this.classify(input, duplicates, firstBySha));
    const todo = prepared.filter((p) => p.image);
    let t = performance.now();
    const imagesMade = this.makeImages(prepared);
    const decoded = await Promise.allSettled(todo.map((p) => this.embedder.decode(p.image!)));
    await imagesMade;
    if (timings) timings.decode += (performance.now() - t) / 1000;
    const ok: Prepared[] = [];
    const pixels: Uint8Array[] = [];
    decoded.forEach((d, i) => {
      if (d.status === 'fulfilled') {
        ok.push(todo[i]);
        pixels.push(d.value);
      } else todo[i].outcome = failure(d.reason);
      todo[i].image = undefined; // release the bytes early
    });
    t = performance.now();
    const vectors = await this.embedder.embedMany(pixels);
    if (timings) timings.embed += (performance.now() - t) / 1000;
    ok.forEach((p, i) => (p.vector = vectors[i]));
    return prepared;
  }

  /** Bulk-add phase 1 for one input: validate, hash, and classify as unchanged or exact duplicate. */
  private async classify(input: BulkInput, duplicates: DuplicatePolicy, firstBySha: Map<string, string>): Promise<Prepared> {
    const base = { key: input.key, id: String(input.id), metadata: {}, sha256: '' };
    if (input.image instanceof Error) return { ...base, outcome: failure(input.image) };
    try {
      const id = validateId(input.id);
      const metadata = validateMetadata(input.metadata);
      const sha256 = sha256Hex(input.image);
      const existing = await this.store.getById(id);
      // Unchanged only if the metadata is too: a re-run manifest with a new price must update the item.
      if (existing && existing.sha256 === sha256 && existing.modelId === this.modelId) {
        const backfill = (await this.images?.missing(sha256)) ? input.image : undefined;
        if (canonicalJson(existing.metadata) === canonicalJson(metadata)) return { ...base, id, metadata, sha256, outcome: { state: 'unchanged' }, ...(backfill ? { backfill } : {}) };
        // Same bytes, new metadata (a manifest's new price): its vector stands, nothing to decode or embed.
        return { ...base, id, metadata, sha256, metadataOnly: true, ...(backfill ? { backfill } : {}) };
      }
      const alias = existing ? undefined : await this.store.getAlias(id);
      if (alias && alias.sha256 === sha256 && duplicates === 'link' && canonicalJson(alias.metadata) === canonicalJson(metadata)) return { ...base, id, metadata, sha256, outcome: { state: 'unchanged' } };
      if (duplicates !== 'keep') {
        const twin = firstBySha.get(sha256) ?? (await this.store.idsBySha256(sha256, 2)).find((other) => other !== id);
        if (twin !== undefined && twin !== id) return { ...base, id, metadata, sha256, outcome: { state: 'duplicate', duplicateOf: twin } };
        firstBySha.set(sha256, id);
      }
      return { ...base, id, metadata, sha256, image: input.image };
    } catch (err) {
      return { ...base, outcome: failure(err) };
    }
  }

  /**
   * Bulk-add phase 2: writes the embedded items. Call inside store.transaction, and give it the
   * returned changes to apply to the index.
   * The duplicate check is repeated here, where it is authoritative: batches prepared concurrently
   * cannot see each other's rows in phase 1.
   */
  async commitPrepared(tx: StoreTx, prepared: Prepared[], duplicates: DuplicatePolicy): Promise<IndexChange[]> {
    if (duplicates !== 'keep') {
      for (const p of prepared) {
        if (!p.vector) continue;
        const twin = (await tx.idsBySha256(p.sha256, 2)).find((other) => other !== p.id);
        if (twin !== undefined) {
          p.vector = undefined;
          p.outcome = { state: 'duplicate', duplicateOf: twin };
        }
      }
    }
    for (const p of prepared) {
      if (!p.metadataOnly) continue;
      const { metadata } = p;
      // Only onto the bytes classified: an item replaced meanwhile by other bytes would get metadata not meant for it.
      const updated = await tx.updateMetadata(p.id, () => metadata, { sha256: p.sha256, modelId: this.modelId });
      p.outcome = updated
        ? { state: 'added' }
        : { state: 'failed', code: 'CHANGED_DURING_INGEST', message: 'the item was replaced or deleted while this job ran; run the job again to store it' };
    }
    const ready = prepared.filter((p) => p.vector);
    const results = await tx.upsertMany(ready.map((p) => ({ id: p.id, metadata: p.metadata, sha256: p.sha256, modelId: this.modelId, vector: p.vector! })));
    ready.forEach((p) => (p.outcome = { state: 'added' }));
    // After the upserts: replacing an item releases its old bytes' images (a trigger), possibly these.
    for (const p of prepared) {
      const state = p.outcome?.state;
      if (p.images && (state === 'added' || state === 'unchanged')) await tx.putImages(p.sha256, p.images);
    }
    const changes = results.map(toIndexChange);
    if (duplicates === 'link') {
      // After the upserts, so a twin added earlier in this very batch exists to be linked to.
      for (const p of prepared) {
        const target = p.outcome?.state === 'duplicate' ? p.outcome.duplicateOf : undefined;
        if (target === undefined) continue;
        if (!(await tx.getById(target))) {
          // Identical bytes decode identically, so the twin failed too; nothing to link to.
          p.outcome = { state: 'failed', code: 'TWIN_FAILED', message: `the item with the same bytes ('${target.slice(0, 200)}') was not stored` };
          continue;
        }
        const removed = await tx.link({ id: p.id, target, sha256: p.sha256, metadata: p.metadata });
        if (removed) changes.push(removed);
      }
    }
    return changes;
  }

  /** Makes the stored images of items to add, and of unchanged items that lack them. */
  private async makeImages(prepared: Prepared[]): Promise<void> {
    const images = this.images;
    if (!images?.enabled) return;
    await Promise.all(
      prepared.map(async (p) => {
        const bytes = p.image ?? p.backfill;
        p.backfill = undefined;
        if (bytes) p.images = await images.make(bytes);
      }),
    );
  }

  /** Adds many images in one transaction (skipping unchanged ones); per-item outcomes in input order. */
  async addMany(inputs: BulkInput[], duplicates: DuplicatePolicy = 'keep'): Promise<Prepared[]> {
    const prepared = await this.prepareMany(inputs, duplicates);
    await this.store.transaction((tx) => this.commitPrepared(tx, prepared, duplicates), (changes) => changes);
    return prepared;
  }

  async getItem(id: string, withVector = false): Promise<ItemView> {
    const key = validateId(id);
    const item = await this.store.getById(key);
    if (item) {
      const aliases = (await this.store.aliasesOf([item.id])).get(item.id);
      return { ...toItemView(item, withVector), ...(aliases ? { aliases } : {}) };
    }
    const alias = await this.store.getAlias(key);
    const target = alias && (await this.store.getById(alias.target));
    if (!alias || !target) throw notFound('ITEM_NOT_FOUND', `no item with id '${key.slice(0, 200)}'`);
    return { ...toItemView(target, withVector), id: alias.id, metadata: alias.metadata, createdAt: alias.createdAt, aliasOf: target.id };
  }

  /**
   * Changes an item's (or an alias's) metadata with a JSON merge patch, in place: the vector, the
   * stored images and the place in the listing stay. Concurrent patches of one item do not lose fields
   * (each reads and writes inside one transaction).
   */
  async patchMetadata(id: unknown, patch: unknown): Promise<ItemView> {
    const key = validateId(id);
    if (!isObject(patch)) throw badRequest('BAD_METADATA', 'metadata must be a JSON object (a merge patch: a field set to null is removed)');
    const updated = await this.store.transaction((tx) => tx.updateMetadata(key, (current) => validateMetadata(mergePatch(current, patch))));
    if (!updated) throw notFound('ITEM_NOT_FOUND', `no item with id '${key.slice(0, 200)}'`);
    return this.getItem(key);
  }

  /** The item stored under `id`, or the item an alias `id` links to, or 404 ITEM_NOT_FOUND. */
  private async requireItem(id: unknown): Promise<Item> {
    const key = validateId(id);
    const own = await this.store.getById(key);
    const alias = own ? undefined : await this.store.getAlias(key);
    const item = own ?? (alias && (await this.store.getById(alias.target)));
    if (!item) throw notFound('ITEM_NOT_FOUND', `no item with id '${key.slice(0, 200)}'`);
    return item;
  }

  /** An item's stored thumbnail or original, with the sha256 of its bytes (a stable ETag). 404 when not stored. */
  async itemImage(id: string, kind: ImageKind): Promise<{ sha256: string; image: StoredImage }> {
    const item = await this.requireItem(id);
    const image = item.sha256 ? await this.images?.get(item.sha256, kind) : undefined;
    if (!image || !item.sha256) {
      const which = `'${String(id).slice(0, 200)}'`;
      throw kind === 'thumbnail'
        ? notFound('THUMBNAIL_NOT_FOUND', `item ${which} has no thumbnail (stored before thumbnails were kept, or thumbnails are off)`)
        : notFound('ORIGINAL_NOT_KEPT', `the original bytes of item ${which} are not kept (see --keep-originals)`);
    }
    return { sha256: item.sha256, image };
  }

  /** An item's stored vector is only comparable with this server's if the same model made it. */
  private requireServedModel(item: Item): Item {
    if (item.modelId !== this.modelId) throw badRequest('MODEL_MISMATCH', `item '${item.id}' was embedded by ${item.modelId}; this server runs ${this.modelId}`);
    return item;
  }

  /** Deletes an item (and the aliases linked to it) or a single alias; returns how many aliases went too. */
  async deleteItem(id: string): Promise<{ aliasesRemoved: number }> {
    const key = validateId(id);
    const removed = await this.store.delete(key);
    if (removed) return { aliasesRemoved: removed.aliases };
    if (!(await this.store.deleteAlias(key))) throw notFound('ITEM_NOT_FOUND', `no item with id '${key.slice(0, 200)}'`);
    return { aliasesRemoved: 0 };
  }

  async listItems(opts: { cursor?: string; limit?: number }): Promise<{ items: ItemView[]; next?: string }> {
    const limit = opts.limit ?? LIMITS.defaultPageSize;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.maxPageSize) {
      throw badRequest('BAD_LIMIT', `limit must be an integer from 1 to ${LIMITS.maxPageSize}, got ${limit}`);
    }
    const page = await this.store.list({ cursor: opts.cursor, limit });
    return { items: page.items.map((item) => toItemView(item)), next: page.next };
  }

  /** Chooses the query vector: a new image, a client vector, or a stored item's vector. */
  private async queryVector(q: SearchQuery): Promise<Float32Array> {
    const given = [q.image !== undefined, q.vector !== undefined, q.id !== undefined].filter(Boolean).length;
    if (given !== 1) throw badRequest('BAD_QUERY', 'give exactly one of image, vector or id');
    if (q.image) return this.embedder.embedImage(q.image);
    if (q.vector) {
      const v = q.vector;
      if (!Array.isArray(v) || v.length !== this.embedder.dim) {
        throw badRequest('BAD_VECTOR', `vector must be an array of ${this.embedder.dim} numbers, got ${Array.isArray(v) ? v.length : typeof v}`);
      }
      if (!v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw badRequest('BAD_VECTOR', 'vector must contain only finite numbers');
      const n = normalize(v);
      if (n.every((x) => x === 0)) throw badRequest('BAD_VECTOR', 'vector must not be all zeros');
      return n;
    }
    return this.requireServedModel(await this.requireItem(q.id)).vector;
  }

  async search(q: SearchQuery): Promise<SearchResult> {
    const t0 = performance.now();
    const k = validateK(q.k);
    if (q.minScore !== undefined && !(Number.isFinite(q.minScore) && q.minScore >= -1 && q.minScore <= 1)) {
      throw badRequest('BAD_MIN_SCORE', `minScore must be a number from -1 to 1, got ${q.minScore}`);
    }
    const filter = q.filter && Object.keys(q.filter).length > 0 ? q.filter : undefined;
    if (filter && Object.keys(filter).length > LIMITS.maxFilterFields) throw badRequest('BAD_FILTER', `at most ${LIMITS.maxFilterFields} filter fields`);
    const vector = await this.queryVector(q);
    const t1 = performance.now();
    let neighbours = await this.store.search(vector, k, { filter });
    if (q.minScore !== undefined) neighbours = neighbours.filter((n) => n.score >= q.minScore!);
    const results = await this.hits(neighbours);
    const exactMatches = q.image ? await this.exactIds(sha256Hex(q.image), filter) : undefined;
    const t2 = performance.now();
    return { results, ...(exactMatches ? { exactMatches } : {}), model: this.modelId, timing: { embedMs: t1 - t0, searchMs: t2 - t1, totalMs: t2 - t0 } };
  }

  /** Items at least `threshold` similar to item `id` (excluding itself), and those with identical bytes. */
  async duplicatesOf(id: string, threshold: number, k: number): Promise<{ id: string; exact: string[]; near: SearchHit[] }> {
    validateThreshold(threshold);
    const item = await this.requireItem(id);
    const near = await this.neighbours(item, threshold, validateK(k));
    const exact = item.sha256 ? (await this.exactIds(item.sha256)).filter((other) => other !== id) : [];
    return { id, exact, near };
  }

  /**
   * Catalogue-wide near-duplicate groups, a page of anchor items at a time. A group is reported once,
   * at its oldest member (lowest label): an anchor with an older neighbour above the threshold is
   * skipped, because that neighbour's group already lists it.
   */
  async duplicateGroups(opts: { threshold: number; cursor?: string; limit?: number }): Promise<{ groups: Array<{ ids: string[]; scores: number[] }>; next?: string }> {
    validateThreshold(opts.threshold);
    const page = await this.store.list({ cursor: opts.cursor, limit: opts.limit ?? LIMITS.defaultPageSize });
    const groups: Array<{ ids: string[]; scores: number[] }> = [];
    for (const item of page.items) {
      if (item.modelId !== this.modelId) continue;
      const hits = (await this.store.search(item.vector, DUPLICATE_NEIGHBOURS)).filter((n) => n.label !== item.label && n.score >= opts.threshold);
      if (hits.length === 0 || hits.some((n) => n.label < item.label)) continue;
      const members = await this.store.getByLabels(hits.map((n) => n.label));
      const found = hits.filter((n) => members.has(n.label));
      groups.push({ ids: [item.id, ...found.map((n) => members.get(n.label)!.id)], scores: [1, ...found.map((n) => n.score)] });
    }
    return { groups, next: page.next };
  }

  private async neighbours(item: Item, threshold: number, k: number): Promise<SearchHit[]> {
    this.requireServedModel(item);
    return this.hits((await this.store.search(item.vector, k + 1)).filter((n) => n.label !== item.label && n.score >= threshold));
  }

  /** Index neighbours → results with metadata and aliases, best first. */
  private async hits(neighbours: Array<{ label: number; score: number }>): Promise<SearchHit[]> {
    const items = await this.store.getByLabels(neighbours.map((n) => n.label));
    const aliases = await this.store.aliasesOf([...items.values()].map((i) => i.id));
    const results: SearchHit[] = [];
    for (const n of neighbours) {
      const item = items.get(n.label);
      // A label can vanish between search and fetch (concurrent delete): skip it.
      if (!item) continue;
      const linked = aliases.get(item.id);
      results.push({ id: item.id, score: n.score, metadata: item.metadata, ...(linked ? { aliases: linked } : {}) });
    }
    return results;
  }

  /**
   * Ids stored with these bytes: items, then aliases. Under a search filter, only those whose own
   * metadata passes it (an alias by its metadata, not its item's), as for the results: a filtered
   * search must not name ids outside the filter.
   */
  private async exactIds(sha256: string, filter?: MetadataFilter): Promise<string[]> {
    const items = await this.store.idsBySha256(sha256, LIMITS.maxK);
    const ids = [...items, ...(await this.store.aliasIdsBySha256(sha256, LIMITS.maxK - items.length))];
    if (!filter) return ids;
    const passes = async (id: string): Promise<boolean> => {
      const own = await this.store.getById(id);
      const metadata = own ? own.metadata : (await this.store.getAlias(id))?.metadata;
      return metadata !== undefined && metadataMatches(metadata, filter);
    };
    const keep = await Promise.all(ids.map(passes));
    return ids.filter((_, i) => keep[i]);
  }

  async stats(): Promise<{ items: number; aliases: number; searchable: number; indexed: number; seq: number }> {
    const s = await this.store.stats(this.modelId);
    return { items: s.items, aliases: s.aliases, searchable: s.itemsForModel, indexed: s.indexed, seq: s.seq };
  }
}
