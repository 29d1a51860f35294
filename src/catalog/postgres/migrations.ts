/**
 * Schema migrations, numbered and applied in order at start. All of them run in one transaction
 * under an advisory lock, so replicas starting together apply each exactly once and none of them
 * serves a half-migrated schema. A database migrated by a newer build is refused, not downgraded.
 */
import type { PoolClient } from 'pg';

export interface SchemaOptions {
  /** Embedding dimension: pgvector's HNSW index needs a fixed-size column. */
  dim: number;
  /** HNSW graph degree and build beam width; fixed when the index is built (REINDEX to change). */
  m: number;
  efConstruction: number;
}

interface Migration {
  version: number;
  name: string;
  sql: (o: SchemaOptions) => string;
}

/** Arbitrary constant naming Likeness's migration lock among the database's advisory locks. */
const MIGRATION_LOCK = 0x4c696b65; // "Like"

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'items with a pgvector HNSW index',
    // Integers only are interpolated (checked by the caller); everything else is constant text.
    sql: ({ dim, m, efConstruction }) => `
      CREATE EXTENSION IF NOT EXISTS vector;
      CREATE TABLE likeness_meta (key text PRIMARY KEY, value text NOT NULL);
      INSERT INTO likeness_meta (key, value) VALUES ('dim', '${dim}');
      -- One sequence numbers every change (add, replace, delete), like the SQLite catalogue's seq.
      CREATE SEQUENCE likeness_seq;
      CREATE TABLE items (
        label      bigserial PRIMARY KEY,
        id         text NOT NULL UNIQUE,
        metadata   jsonb NOT NULL,
        sha256     text,
        model_id   text NOT NULL,
        embedding  vector(${dim}) NOT NULL,
        seq        bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX items_sha256 ON items (sha256);
      -- No btree index on model_id: the planner would pick it over HNSW for "this model's nearest
      -- neighbours" and sort every row exactly. Rows of other models are skipped by the iterative scan.
      CREATE INDEX items_embedding ON items USING hnsw (embedding vector_cosine_ops) WITH (m = ${m}, ef_construction = ${efConstruction});`,
  },
  {
    version: 2,
    name: 'ingest jobs with leased items',
    sql: () => `
      CREATE TABLE jobs (
        id text PRIMARY KEY, source jsonb NOT NULL, options jsonb NOT NULL, status text NOT NULL,
        total integer NOT NULL DEFAULT 0, added integer NOT NULL DEFAULT 0, unchanged integer NOT NULL DEFAULT 0,
        duplicates integer NOT NULL DEFAULT 0, failed integer NOT NULL DEFAULT 0, error text,
        created_at timestamptz NOT NULL DEFAULT now(), started_at timestamptz, finished_at timestamptz
      );
      CREATE TABLE job_items (
        job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        key integer NOT NULL,
        id text NOT NULL, path text NOT NULL, "offset" bigint, size bigint, metadata jsonb NOT NULL,
        state text NOT NULL DEFAULT 'pending',
        lease_owner text, lease_until timestamptz, attempts integer NOT NULL DEFAULT 0,
        code text, message text, duplicate_of text,
        PRIMARY KEY (job_id, key)
      );
      CREATE INDEX job_items_open ON job_items (job_id, key) WHERE state IN ('pending', 'claimed');
      CREATE INDEX jobs_unfinished ON jobs (created_at) WHERE status IN ('queued', 'running');`,
  },
  {
    version: 3,
    name: 'aliases and stored images',
    sql: () => `
      -- Ids linked to an item with the same bytes (ingest --duplicates link). Out of the items table:
      -- an alias has no vector of its own, so the HNSW index never sees it.
      CREATE TABLE aliases (
        id         text PRIMARY KEY,
        target     text NOT NULL,
        sha256     text,
        metadata   jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX aliases_target ON aliases (target);
      CREATE INDEX aliases_sha256 ON aliases (sha256);
      -- Thumbnails and kept originals, keyed by the sha256 of the item's bytes: identical uploads share them.
      CREATE TABLE images (
        sha256 text NOT NULL,
        kind   text NOT NULL CHECK (kind IN ('thumbnail', 'original')),
        bytes  bytea NOT NULL,
        type   text NOT NULL,
        PRIMARY KEY (sha256, kind)
      );
      -- Bytes no item refers to any more go with the last such item, whatever statement removed or
      -- replaced it (an upsert updates the row in place, so UPDATE OF sha256 counts too).
      CREATE FUNCTION likeness_release_images() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.sha256 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM items WHERE sha256 = OLD.sha256) THEN
          DELETE FROM images WHERE sha256 = OLD.sha256;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER images_release AFTER DELETE OR UPDATE OF sha256 ON items
        FOR EACH ROW EXECUTE FUNCTION likeness_release_images();`,
  },
];

/** Applies the missing migrations; returns the versions applied now. */
export async function migrate(client: PoolClient, opts: SchemaOptions): Promise<number[]> {
  for (const [k, v] of Object.entries(opts)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`${k} must be a positive integer, got ${v}`);
  }
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(`CREATE TABLE IF NOT EXISTS likeness_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM likeness_migrations')).rows.map((r) => r.version));
    const newest = Math.max(0, ...done);
    const known = MIGRATIONS[MIGRATIONS.length - 1].version;
    if (newest > known) throw new Error(`the database schema is at version ${newest}; this build knows versions up to ${known}`);
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query(m.sql(opts));
      await client.query('INSERT INTO likeness_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    const dim = (await client.query<{ value: string }>(`SELECT value FROM likeness_meta WHERE key = 'dim'`)).rows[0]?.value;
    if (Number(dim) !== opts.dim) {
      // One vector size per database (the column is vector(dim), and its HNSW index with it).
      throw new Error(`the database stores ${dim}-dimensional vectors and this model makes ${opts.dim}: use a new database for this model (--store / LIKENESS_STORE), or serve a model with ${dim}-dimensional embeddings (--model)`);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
