/**
 * CatalogService: the rules of the serving flow. Routers and the CLI call it; it validates input,
 * embeds, writes the catalogue (the truth) and then the index (derived), and maps rows to results.
 */
import { createHash } from 'node:crypto';
import { badRequest, notFound } from '../errors';
import type { Embedder } from '../embed/embedder';
import type { IndexStore } from '../index/index-store';
import { normalize } from '../index/vector-index';
import type { Catalog, Item, Metadata, MetadataFilter } from './catalog';

/** Limits on what a client controls. */
export const LIMITS = {
  maxK: 1000,
  defaultK: 10,
  maxPageSize: 1000,
  defaultPageSize: 100,
  maxIdLength: 512,
  maxMetadataBytes: 16 * 1024,
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
}

export interface SearchResult {
  results: SearchHit[];
  model: string;
  timing: { embedMs: number; searchMs: number; totalMs: number };
}

export interface ItemView {
  id: string;
  metadata: Metadata;
  sha256: string | null;
  model: string;
  createdAt: string;
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
  if (typeof metadata !== 'object' || Array.isArray(metadata)) throw badRequest('BAD_METADATA', 'metadata must be a JSON object');
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > LIMITS.maxMetadataBytes) throw badRequest('BAD_METADATA', `metadata is ${bytes} bytes; the limit is ${LIMITS.maxMetadataBytes}`);
  return metadata as Metadata;
}

function validateK(k: number | undefined): number {
  if (k === undefined) return LIMITS.defaultK;
  if (!Number.isInteger(k) || k < 1 || k > LIMITS.maxK) throw badRequest('BAD_K', `k must be an integer from 1 to ${LIMITS.maxK}, got ${k}`);
  return k;
}

export class CatalogService {
  constructor(
    private readonly catalog: Catalog,
    private readonly index: IndexStore,
    private readonly embedder: Embedder,
  ) {}

  get modelId(): string {
    return this.embedder.modelId;
  }

  /** Embeds and stores an image under `id`, replacing any item with that id. Resolves once committed. */
  async addItem(input: { id: unknown; image: Uint8Array; metadata?: unknown }): Promise<{ item: ItemView; replaced: boolean }> {
    const id = validateId(input.id);
    const metadata = validateMetadata(input.metadata);
    const vector = await this.embedder.embedImage(input.image);
    const sha256 = createHash('sha256').update(input.image).digest('hex');
    const { item, replacedLabel } = this.catalog.upsert({ id, metadata, sha256, modelId: this.modelId, vector });
    this.index.apply(item.seq, { remove: replacedLabel, add: { label: item.label, vector: item.vector } });
    return { item: toItemView(item), replaced: replacedLabel !== undefined };
  }

  /**
   * Adds many images in one catalogue transaction (bulk import). Items whose id already holds the same
   * bytes embedded by this model are skipped, so an interrupted import can simply run again.
   */
  async addMany(inputs: Array<{ id: string; image: Uint8Array; metadata: Metadata }>): Promise<{ added: number; skipped: number }> {
    const fresh = inputs
      .map((input) => ({ ...input, id: validateId(input.id), metadata: validateMetadata(input.metadata), sha256: createHash('sha256').update(input.image).digest('hex') }))
      .filter((input) => {
        const existing = this.catalog.getById(input.id);
        return !(existing && existing.sha256 === input.sha256 && existing.modelId === this.modelId);
      });
    const pixels = await Promise.all(fresh.map((input) => this.embedder.decode(input.image)));
    const vectors = await this.embedder.embedMany(pixels);
    const results = this.catalog.upsertMany(fresh.map((input, i) => ({ id: input.id, metadata: input.metadata, sha256: input.sha256, modelId: this.modelId, vector: vectors[i] })));
    for (const { item, replacedLabel } of results) this.index.apply(item.seq, { remove: replacedLabel, add: { label: item.label, vector: item.vector } });
    return { added: results.length, skipped: inputs.length - fresh.length };
  }

  getItem(id: string, withVector = false): ItemView {
    const item = this.catalog.getById(validateId(id));
    if (!item) throw notFound('ITEM_NOT_FOUND', `no item with id '${id.slice(0, 200)}'`);
    return toItemView(item, withVector);
  }

  deleteItem(id: string): void {
    const removed = this.catalog.delete(validateId(id));
    if (!removed) throw notFound('ITEM_NOT_FOUND', `no item with id '${id.slice(0, 200)}'`);
    this.index.apply(removed.seq, { remove: removed.label });
  }

  listItems(opts: { cursor?: string; limit?: number }): { items: ItemView[]; next?: string } {
    const limit = opts.limit ?? LIMITS.defaultPageSize;
    if (!Number.isInteger(limit) || limit < 1 || limit > LIMITS.maxPageSize) {
      throw badRequest('BAD_LIMIT', `limit must be an integer from 1 to ${LIMITS.maxPageSize}, got ${limit}`);
    }
    const page = this.catalog.list({ cursor: opts.cursor, limit });
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
    const item = this.catalog.getById(validateId(q.id));
    if (!item) throw notFound('ITEM_NOT_FOUND', `no item with id '${q.id!.slice(0, 200)}'`);
    if (item.modelId !== this.modelId) {
      throw badRequest('MODEL_MISMATCH', `item '${item.id}' was embedded by ${item.modelId}; this server runs ${this.modelId}`);
    }
    return item.vector;
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
    const accept = filter ? (label: number) => this.catalog.matches(label, filter) : undefined;
    let neighbours = this.index.search(vector, k, accept);
    if (q.minScore !== undefined) neighbours = neighbours.filter((n) => n.score >= q.minScore!);
    const items = this.catalog.getByLabels(neighbours.map((n) => n.label));
    const results: SearchHit[] = [];
    for (const n of neighbours) {
      const item = items.get(n.label);
      // A label can vanish between search and fetch (concurrent delete): skip it.
      if (item) results.push({ id: item.id, score: n.score, metadata: item.metadata });
    }
    const t2 = performance.now();
    return { results, model: this.modelId, timing: { embedMs: t1 - t0, searchMs: t2 - t1, totalMs: t2 - t0 } };
  }

  stats(): { items: number; searchable: number; indexed: number; seq: number } {
    const s = this.catalog.stats(this.modelId);
    return { items: s.items, searchable: s.itemsForModel, indexed: this.index.size(), seq: s.seq };
  }
}
