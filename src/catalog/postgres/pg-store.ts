/**
 * PostgresStore: items, metadata (jsonb), content hash, model id and vector in one table, searched
 * through a pgvector HNSW index. The servers hold no state of their own, so any number of replicas
 * can share one database (or a Citus cluster): writes by one are visible to the others at once.
 */
import type { PoolClient } from 'pg';
import { decodeCursor, encodeCursor } from '../cursor';
import { cosineFromDistance, type Neighbour } from '../../index/vector-index';
import type { StoredImage } from '../../images/thumbnail';
import type { Alias, Item, Metadata, MetadataFilter, MetadataUpdate, NewAlias, NewItem, Page, SameBytes, UpsertResult } from '../catalog';
import type { ImageKind, ItemImageSet } from '../item-images';
import { checkFilter } from '../store';
import type { IndexChange, JobQueue, SearchOptions, Store, StoreStats, StoreTx } from '../store';
import { migrate } from './migrations';
import { holdLeases, PgJobQueue, recordOutcomes } from './pg-jobs';
import { PgPool, Queryable } from './pg-pool';

export interface PostgresStoreOptions {
  url: string;
  /** Connections per replica. */
  poolSize: number;
  dim: number;
  /** The served model: searches look only at its vectors (the index holds every model's). */
  modelId: string;
  hnsw: { m: number; efConstruction: number; efSearch: number };
  log: (msg: string, fields?: Record<string, unknown>) => void;
}

/**
 * Rows an iterative index scan may visit before giving up on a filtered query (pgvector's
 * hnsw.max_scan_tuples, default 20,000): bounds a query whose filter matches almost nothing.
 */
const MAX_SCAN_TUPLES = 50_000;

interface ItemRow {
  label: string;
  id: string;
  metadata: Record<string, unknown>;
  sha256: string | null;
  model_id: string;
  embedding: string;
  seq: string;
  created_at: Date;
}

/** pgvector's text format: '[0.1,0.2,...]'. float32 → JS number → text is exact, and back. */
const toVectorText = (v: Float32Array): string => `[${Array.from(v).join(',')}]`;
const fromVectorText = (s: string): Float32Array => Float32Array.from(s.slice(1, -1).split(','), Number);

const toItem = (r: ItemRow): Item => ({
  label: Number(r.label),
  id: r.id,
  metadata: r.metadata,
  sha256: r.sha256,
  modelId: r.model_id,
  vector: fromVectorText(r.embedding),
  seq: Number(r.seq),
  createdAt: r.created_at.toISOString(),
});


/** jsonb containment (`metadata @> filter`): every field equal, served by a GIN index if one is added. */
function filterJson(filter: MetadataFilter | undefined): string | null {
  const checked = checkFilter(filter);
  return checked ? JSON.stringify(checked) : null;
}

const ITEM_COLUMNS = 'label, id, metadata, sha256, model_id, embedding::text AS embedding, seq, created_at';

/** Adds or replaces items; within one call ids are unique. Labels are new on replace, as in SQLite. */
async function upsertRows(c: Queryable, items: NewItem[]): Promise<UpsertResult[]> {
  if (items.length === 0) return [];
  const ids = items.map((i) => i.id);
  // An id names one thing: storing an item under an alias's id ends the alias.
  await c.query('DELETE FROM aliases WHERE id = ANY($1::text[])', [ids]);
  // FOR UPDATE below locks only rows that exist: two writers adding the same new id would both see
  // none and both report "added". A lock per id (taken in hash order, so writers cannot deadlock)
  // makes the second wait and see the first's row.
  await c.query('SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(id, 0) AS h FROM unnest($1::text[]) AS id ORDER BY h) AS s', [ids]);
  const old = new Map((await c.query<{ id: string; label: string }>('SELECT id, label FROM items WHERE id = ANY($1::text[]) FOR UPDATE', [ids])).rows.map((r) => [r.id, Number(r.label)]));
  const { rows } = await c.query<ItemRow>(
    `INSERT INTO items (id, metadata, sha256, model_id, embedding, seq)
     SELECT u.id, u.metadata, u.sha256, u.model_id, u.embedding, nextval('likeness_seq')
     FROM unnest($1::text[], $2::jsonb[], $3::text[], $4::text[], $5::vector[]) WITH ORDINALITY AS u(id, metadata, sha256, model_id, embedding, n)
     ORDER BY u.n
     ON CONFLICT (id) DO UPDATE SET label = nextval('items_label_seq'), metadata = EXCLUDED.metadata, sha256 = EXCLUDED.sha256,
       model_id = EXCLUDED.model_id, embedding = EXCLUDED.embedding, seq = EXCLUDED.seq, created_at = now()
     RETURNING ${ITEM_COLUMNS}`,
    [ids, items.map((i) => JSON.stringify(i.metadata)), items.map((i) => i.sha256), items.map((i) => i.modelId), items.map((i) => toVectorText(i.vector))],
  );
  const byId = new Map(rows.map((r) => [r.id, toItem(r)]));
  return ids.map((id) => ({ item: byId.get(id)!, replacedLabel: old.get(id) }));
}

/** Upserts in input order; an id repeated within the batch is written in several statements (last wins). */
async function upsertAll(c: Queryable, items: NewItem[]): Promise<UpsertResult[]> {
  const out: UpsertResult[] = [];
  let part: NewItem[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.id)) {
      out.push(...(await upsertRows(c, part)));
      part = [];
      seen.clear();
    }
    part.push(item);
    seen.add(item.id);
  }
  out.push(...(await upsertRows(c, part)));
  return out;
}

const idsBySha = async (c: Queryable, sha256: string, limit: number): Promise<string[]> =>
  (await c.query<{ id: string }>('SELECT id FROM items WHERE sha256 = $1 ORDER BY label LIMIT $2', [sha256, limit])).rows.map((r) => r.id);

const itemById = async (c: Queryable, id: string): Promise<Item | undefined> => {
  const r = (await c.query<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM items WHERE id = $1`, [id])).rows[0];
  return r && toItem(r);
};

/** Deletes the item `id` with its aliases (they would name nothing); its label and the change's seq for the index. */
async function removeItem(c: Queryable, id: string): Promise<{ label: number; seq: number; aliases: number } | undefined> {
  const r = (await c.query<{ label: string; seq: string }>(`DELETE FROM items WHERE id = $1 RETURNING label, nextval('likeness_seq') AS seq`, [id])).rows[0];
  if (!r) return undefined;
  const { rowCount } = await c.query('DELETE FROM aliases WHERE target = $1', [id]);
  return { label: Number(r.label), seq: Number(r.seq), aliases: rowCount ?? 0 };
}

async function linkAlias(c: Queryable, alias: NewAlias): Promise<IndexChange | undefined> {
  const removed = await removeItem(c, alias.id);
  await c.query(
    `INSERT INTO aliases (id, target, sha256, metadata) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO UPDATE SET target = EXCLUDED.target, sha256 = EXCLUDED.sha256, metadata = EXCLUDED.metadata, created_at = now()`,
    [alias.id, alias.target, alias.sha256, JSON.stringify(alias.metadata)],
  );
  return removed && { seq: removed.seq, remove: removed.label };
}

/** See StoreTx.updateMetadata; the row is locked from its read to its write, so concurrent updates do not lose each other's fields. */
async function updateMetadata(c: Queryable, id: string, update: MetadataUpdate, where?: SameBytes): Promise<boolean> {
  const item = (await c.query<{ metadata: Metadata; sha256: string | null; model_id: string }>(`SELECT metadata, sha256, model_id FROM items WHERE id = $1 FOR UPDATE`, [id])).rows[0];
  if (item) {
    if (where && (item.sha256 !== where.sha256 || item.model_id !== where.modelId)) return false;
    await c.query('UPDATE items SET metadata = $2 WHERE id = $1', [id, JSON.stringify(update(item.metadata))]);
    return true;
  }
  const alias = where ? undefined : (await c.query<{ metadata: Metadata }>('SELECT metadata FROM aliases WHERE id = $1 FOR UPDATE', [id])).rows[0];
  if (!alias) return false;
  await c.query('UPDATE aliases SET metadata = $2 WHERE id = $1', [id, JSON.stringify(update(alias.metadata))]);
  return true;
}

async function putImages(c: Queryable, sha256: string, images: ItemImageSet): Promise<void> {
  for (const kind of ['thumbnail', 'original'] as const) {
    const image = images[kind];
    if (!image) continue;
    await c.query(
      `INSERT INTO images (sha256, kind, bytes, type) VALUES ($1, $2, $3, $4)
       ON CONFLICT (sha256, kind) DO UPDATE SET bytes = EXCLUDED.bytes, type = EXCLUDED.type`,
      [sha256, kind, image.bytes, image.type],
    );
  }
}

interface AliasRow {
  id: string;
  target: string;
  sha256: string | null;
  metadata: Record<string, unknown>;
  created_at: Date;
}

export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly jobs: JobQueue;

  private constructor(
    private readonly db: PgPool,
    private readonly opts: PostgresStoreOptions,
  ) {
    this.jobs = new PgJobQueue(db, (fn) => db.transaction(fn));
  }

  /** Connects, applies migrations and checks the vector dimension. */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const db = new PgPool(opts.url, opts.poolSize, (err) => opts.log('idle database connection lost', { error: err.message }));
    try {
      const applied = await db.withClient((c) => migrate(c, { dim: opts.dim, m: opts.hnsw.m, efConstruction: opts.hnsw.efConstruction }));
      if (applied.length) opts.log('database migrated', { applied });
    } catch (err) {
      await db.end();
      throw err;
    }
    return new PostgresStore(db, opts);
  }

  upsert(item: NewItem, images?: ItemImageSet): Promise<UpsertResult> {
    return this.db.transaction(async (c) => {
      const [result] = await upsertRows(c, [item]);
      if (images && item.sha256) await putImages(c, item.sha256, images);
      return result;
    });
  }

  async delete(id: string): Promise<{ aliases: number } | undefined> {
    const removed = await this.db.transaction((c) => removeItem(c, id));
    return removed && { aliases: removed.aliases };
  }

  getById(id: string): Promise<Item | undefined> {
    return itemById(this.db, id);
  }

  async getAlias(id: string): Promise<Alias | undefined> {
    const r = (await this.db.query<AliasRow>('SELECT id, target, sha256, metadata, created_at FROM aliases WHERE id = $1', [id])).rows[0];
    return r && { id: r.id, target: r.target, sha256: r.sha256, metadata: r.metadata, createdAt: r.created_at.toISOString() };
  }

  async deleteAlias(id: string): Promise<boolean> {
    const { rowCount } = await this.db.query('DELETE FROM aliases WHERE id = $1', [id]);
    return (rowCount ?? 0) > 0;
  }

  async aliasesOf(targets: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (targets.length === 0) return out;
    // COLLATE "C": byte order, as SQLite sorts, whatever the database's locale.
    const { rows } = await this.db.query<{ id: string; target: string }>('SELECT id, target FROM aliases WHERE target = ANY($1::text[]) ORDER BY id COLLATE "C"', [targets]);
    for (const r of rows) out.set(r.target, [...(out.get(r.target) ?? []), r.id]);
    return out;
  }

  async aliasIdsBySha256(sha256: string, limit: number): Promise<string[]> {
    const { rows } = await this.db.query<{ id: string }>('SELECT id FROM aliases WHERE sha256 = $1 ORDER BY id COLLATE "C" LIMIT $2', [sha256, limit]);
    return rows.map((r) => r.id);
  }

  async getImage(sha256: string, kind: ImageKind): Promise<StoredImage | undefined> {
    return (await this.db.query<StoredImage>('SELECT bytes, type FROM images WHERE sha256 = $1 AND kind = $2', [sha256, kind])).rows[0];
  }

  async hasImage(sha256: string, kind: ImageKind): Promise<boolean> {
    return ((await this.db.query('SELECT 1 FROM images WHERE sha256 = $1 AND kind = $2', [sha256, kind])).rowCount ?? 0) > 0;
  }

  async getByLabels(labels: number[]): Promise<Map<number, Item>> {
    const out = new Map<number, Item>();
    if (labels.length === 0) return out;
    const { rows } = await this.db.query<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM items WHERE label = ANY($1::bigint[])`, [labels]);
    for (const r of rows) out.set(Number(r.label), toItem(r));
    return out;
  }

  async list({ cursor, limit }: { cursor?: string; limit: number }): Promise<Page> {
    const after = cursor ? decodeCursor(cursor) : 0;
    const { rows } = await this.db.query<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM items WHERE label > $1 ORDER BY label LIMIT $2`, [after, limit + 1]);
    const items = rows.slice(0, limit).map(toItem);
    return { items, next: rows.length > limit ? encodeCursor(items[items.length - 1].label) : undefined };
  }

  idsBySha256(sha256: string, limit: number): Promise<string[]> {
    return idsBySha(this.db, sha256, limit);
  }

  /**
   * HNSW search through pgvector. ef_search is set per query (SET LOCAL, so it never leaks to other
   * queries on the pooled connection). Iterative index scans keep scanning the graph until k rows pass
   * the model and metadata filters, instead of filtering a fixed ef-sized candidate list down to fewer
   * than k; relaxed order may return rows slightly out of order, so the k found are re-sorted.
   */
  async search(query: Float32Array, k: number, opts: SearchOptions = {}): Promise<Neighbour[]> {
    const filter = filterJson(opts.filter);
    const ef = Math.max(k, Math.min(1000, Math.round(opts.ef ?? this.opts.hnsw.efSearch)));
    if (!Number.isInteger(ef) || !Number.isInteger(k)) throw new RangeError(`k and ef must be integers, got ${k} and ${ef}`);
    const { modelId } = this.opts;
    return this.db.transaction(async (c) => {
      // Integers only, checked above: SET takes no bind parameters. enable_seqscan off: without fresh
      // statistics (after a bulk load, before ANALYZE) the planner guesses the model filter is
      // selective and sorts the whole table exactly instead of walking the HNSW graph.
      await c.query(
        `SET LOCAL hnsw.ef_search = ${Math.min(ef, 1000)}; SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.max_scan_tuples = ${MAX_SCAN_TUPLES}; SET LOCAL enable_seqscan = off`,
      );
      const { rows } = await c.query<{ label: string; d: number }>(
        `WITH c AS MATERIALIZED (
           SELECT label, embedding <=> $1::vector AS d FROM items
           WHERE model_id = $2 ${filter ? 'AND metadata @> $4::jsonb' : ''}
           ORDER BY embedding <=> $1::vector LIMIT $3)
         SELECT label, d FROM c ORDER BY d, label`,
        filter ? [toVectorText(query), modelId, k, filter] : [toVectorText(query), modelId, k],
      );
      return rows.map((r) => ({ label: Number(r.label), score: cosineFromDistance(r.d) }));
    });
  }

  async stats(modelId: string): Promise<StoreStats> {
    const { rows } = await this.db.query<{ items: string; model: string; aliases: string; seq: string }>(
      `SELECT (SELECT count(*) FROM items) AS items, (SELECT count(*) FROM items WHERE model_id = $1) AS model,
              (SELECT count(*) FROM aliases) AS aliases,
              (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM likeness_seq) AS seq`,
      [modelId],
    );
    const r = rows[0];
    // The HNSW index covers every row; searches see only the served model's.
    return { items: Number(r.items), itemsForModel: Number(r.model), aliases: Number(r.aliases), indexed: Number(r.model), seq: Number(r.seq) };
  }

  async *itemsOf(modelId: string, chunk: number): AsyncIterable<Item[]> {
    let after = 0;
    for (;;) {
      const { rows } = await this.db.query<ItemRow>(`SELECT ${ITEM_COLUMNS} FROM items WHERE model_id = $1 AND label > $2 ORDER BY label LIMIT $3`, [modelId, after, chunk]);
      if (rows.length === 0) return;
      after = Number(rows[rows.length - 1].label);
      yield rows.map(toItem);
    }
  }

  /** pgvector maintains its HNSW index inside each write's transaction: there are no index changes to apply. */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    return this.db.transaction((c: PoolClient) =>
      fn({
        getById: (id) => itemById(c, id),
        idsBySha256: (sha256, limit) => idsBySha(c, sha256, limit),
        upsertMany: (items) => upsertAll(c, items),
        link: (alias) => linkAlias(c, alias),
        putImages: (sha256, images) => putImages(c, sha256, images),
        updateMetadata: (id, update, where) => updateMetadata(c, id, update, where),
        holdLeases: (jobId, owner, keys) => holdLeases(c, jobId, owner, keys),
        recordOutcomes: (jobId, owner, outcomes) => recordOutcomes(c, jobId, owner, outcomes),
      }),
    );
  }

  close(): Promise<void> {
    return this.db.end();
  }
}
