/**
 * SQLite catalogue (better-sqlite3, WAL, synchronous=FULL): a write returns only after its
 * transaction is on disk, so an acknowledged add survives kill -9 and power loss.
 */
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeCursor, encodeCursor } from './cursor';
import type { Alias, Catalog, CatalogStats, Item, Metadata, MetadataFilter, MetadataUpdate, NewAlias, NewItem, Page, SameBytes, UpsertResult } from './catalog';
import { FieldValues, fromJson, type FieldChange, type FieldValue } from './field-values';
import { checkFilter } from './store';

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  label      INTEGER PRIMARY KEY AUTOINCREMENT,
  id         TEXT NOT NULL UNIQUE,
  metadata   TEXT NOT NULL,
  sha256     TEXT,
  model_id   TEXT NOT NULL,
  vector     BLOB NOT NULL,
  seq        INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_model_seq ON items (model_id, seq);
CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256);
-- Labels removed from the catalogue, kept until an index snapshot covers them.
CREATE TABLE IF NOT EXISTS removed (label INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
-- Ids linked to an item with the same bytes (ingest --duplicates link). Kept out of the items table so
-- the index, its replay and its rebuild never see them: an alias has no vector of its own.
CREATE TABLE IF NOT EXISTS aliases (
  id         TEXT PRIMARY KEY,
  target     TEXT NOT NULL,
  sha256     TEXT,
  metadata   TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS aliases_target ON aliases (target);
CREATE INDEX IF NOT EXISTS aliases_sha256 ON aliases (sha256);
`;

interface ItemRow {
  label: number;
  id: string;
  metadata: string;
  sha256: string | null;
  model_id: string;
  vector: Buffer;
  seq: number;
  created_at: string;
}

function toItem(row: ItemRow): Item {
  const v = row.vector;
  // Copy: the Buffer may share memory with better-sqlite3's row storage.
  const vector = new Float32Array(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
  return {
    label: row.label,
    id: row.id,
    metadata: JSON.parse(row.metadata),
    sha256: row.sha256,
    modelId: row.model_id,
    vector,
    seq: row.seq,
    createdAt: row.created_at,
  };
}

interface AliasRow {
  id: string;
  target: string;
  sha256: string | null;
  metadata: string;
  created_at: string;
}

const toAlias = (r: AliasRow): Alias => ({ id: r.id, target: r.target, sha256: r.sha256, metadata: JSON.parse(r.metadata), createdAt: r.created_at });


export class SqliteCatalog implements Catalog {
  private readonly db: Database.Database;
  private readonly stmts;
  private readonly fieldValues = new FieldValues();
  /** Changes to items inside the open transaction, for the cached field values (see `write`). */
  private pendingFields: Array<[number, FieldChange]> = [];

  constructor(file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const version = this.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
    if (!version) {
      this.db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('seq', '0')`).run(String(SCHEMA_VERSION));
    } else if (Number(version.value) !== SCHEMA_VERSION) {
      throw new Error(`catalogue ${file} has schema version ${version.value}; this build reads version ${SCHEMA_VERSION}`);
    }
    this.stmts = {
      nextSeq: this.db.prepare(`UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'seq' RETURNING CAST(value AS INTEGER) AS seq`),
      seq: this.db.prepare(`SELECT CAST(value AS INTEGER) AS seq FROM meta WHERE key = 'seq'`),
      byId: this.db.prepare(`SELECT * FROM items WHERE id = ?`),
      insert: this.db.prepare(
        `INSERT INTO items (id, metadata, sha256, model_id, vector, seq, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      ),
      deleteLabel: this.db.prepare(`DELETE FROM items WHERE label = ?`),
      remember: this.db.prepare(`INSERT OR REPLACE INTO removed (label, seq) VALUES (?, ?)`),
      page: this.db.prepare(`SELECT * FROM items WHERE label > ? ORDER BY label LIMIT ?`),
      count: this.db.prepare(`SELECT COUNT(*) AS n FROM items`),
      countModel: this.db.prepare(`SELECT COUNT(*) AS n FROM items WHERE model_id = ?`),
      since: this.db.prepare(`SELECT * FROM items WHERE model_id = ? AND seq > ? AND label > ? ORDER BY label LIMIT ?`),
      removedSince: this.db.prepare(`SELECT label FROM removed WHERE seq > ?`),
      prune: this.db.prepare(`DELETE FROM removed WHERE seq <= ?`),
      bySha: this.db.prepare(`SELECT id FROM items WHERE sha256 = ? ORDER BY label LIMIT ?`),
      alias: this.db.prepare(`SELECT * FROM aliases WHERE id = ?`),
      putAlias: this.db.prepare(`INSERT OR REPLACE INTO aliases (id, target, sha256, metadata, created_at) VALUES (?, ?, ?, ?, ?)`),
      deleteAlias: this.db.prepare(`DELETE FROM aliases WHERE id = ?`),
      deleteAliasesOf: this.db.prepare(`DELETE FROM aliases WHERE target = ?`),
      aliasesBySha: this.db.prepare(`SELECT id FROM aliases WHERE sha256 = ? ORDER BY id LIMIT ?`),
      countAliases: this.db.prepare(`SELECT COUNT(*) AS n FROM aliases`),
      setItemMetadata: this.db.prepare(`UPDATE items SET metadata = ? WHERE id = ?`),
      setAliasMetadata: this.db.prepare(`UPDATE aliases SET metadata = ? WHERE id = ?`),
      fieldScan: this.db.prepare(`SELECT label, json_type(metadata, ?), json_extract(metadata, ?) FROM items`).raw(),
    };
  }

  private nextSeq(): number {
    return (this.stmts.nextSeq.get() as { seq: number }).seq;
  }

  /** Deletes the item row of `id` (if any) and records its label for the index. */
  private removeRow(id: string, seq: number): number | undefined {
    const old = this.stmts.byId.get(id) as ItemRow | undefined;
    if (!old) return undefined;
    this.stmts.deleteLabel.run(old.label);
    this.stmts.remember.run(old.label, seq);
    this.changed(old.label, undefined);
    return old.label;
  }

  private upsertOne(item: NewItem): UpsertResult {
    const seq = this.nextSeq();
    // An id names one thing: storing an item under an alias's id ends the alias.
    this.stmts.deleteAlias.run(item.id);
    const replacedLabel = this.removeRow(item.id, seq);
    const vec = Buffer.from(item.vector.buffer, item.vector.byteOffset, item.vector.byteLength);
    const row = this.stmts.insert.get(item.id, JSON.stringify(item.metadata), item.sha256, item.modelId, vec, seq, new Date().toISOString()) as ItemRow;
    this.changed(row.label, item.metadata);
    return { item: toItem(row), replacedLabel };
  }

  upsert(item: NewItem): UpsertResult {
    return this.write(() => this.upsertOne(item));
  }

  upsertMany(items: NewItem[]): UpsertResult[] {
    return this.write(() => items.map((i) => this.upsertOne(i)));
  }

  delete(id: string): { label: number; seq: number; aliases: number } | undefined {
    return this.write(() => {
      if (!this.stmts.byId.get(id)) return undefined;
      const seq = this.nextSeq();
      const label = this.removeRow(id, seq)!;
      // Aliases name the same bytes as their target; without it they would point at nothing.
      const aliases = this.stmts.deleteAliasesOf.run(id).changes;
      return { label, seq, aliases };
    });
  }

  updateMetadata(id: string, update: MetadataUpdate, where?: SameBytes): boolean {
    return this.write(() => {
      const item = this.stmts.byId.get(id) as ItemRow | undefined;
      if (item) {
        if (where && (item.sha256 !== where.sha256 || item.model_id !== where.modelId)) return false;
        const metadata = update(JSON.parse(item.metadata));
        this.stmts.setItemMetadata.run(JSON.stringify(metadata), id);
        this.changed(item.label, metadata);
        return true;
      }
      const alias = where ? undefined : (this.stmts.alias.get(id) as AliasRow | undefined);
      if (!alias) return false;
      this.stmts.setAliasMetadata.run(JSON.stringify(update(JSON.parse(alias.metadata))), id);
      return true;
    });
  }

  link(alias: NewAlias): { label: number; seq: number } | undefined {
    return this.write(() => {
      let removed: { label: number; seq: number } | undefined;
      if (this.stmts.byId.get(alias.id)) {
        const seq = this.nextSeq();
        removed = { label: this.removeRow(alias.id, seq)!, seq };
        this.stmts.deleteAliasesOf.run(alias.id);
      }
      this.stmts.putAlias.run(alias.id, alias.target, alias.sha256, JSON.stringify(alias.metadata), new Date().toISOString());
      return removed;
    });
  }

  getAlias(id: string): Alias | undefined {
    const row = this.stmts.alias.get(id) as AliasRow | undefined;
    return row && toAlias(row);
  }

  deleteAlias(id: string): boolean {
    return this.stmts.deleteAlias.run(id).changes > 0;
  }

  aliasesOf(targets: string[]): Map<string, string[]> {
    const out = new Map<string, string[]>();
    if (targets.length === 0) return out;
    const rows = this.db
      .prepare(`SELECT id, target FROM aliases WHERE target IN (${targets.map(() => '?').join(',')}) ORDER BY id`)
      .all(...targets) as Array<{ id: string; target: string }>;
    for (const r of rows) out.set(r.target, [...(out.get(r.target) ?? []), r.id]);
    return out;
  }

  aliasIdsBySha256(sha256: string, limit: number): string[] {
    return (this.stmts.aliasesBySha.all(sha256, limit) as { id: string }[]).map((r) => r.id);
  }

  getById(id: string): Item | undefined {
    const row = this.stmts.byId.get(id) as ItemRow | undefined;
    return row && toItem(row);
  }

  getByLabels(labels: number[]): Map<number, Item> {
    const out = new Map<number, Item>();
    if (labels.length === 0) return out;
    // SQLite's default limit on bound parameters is 32766; result pages are far smaller.
    const rows = this.db.prepare(`SELECT * FROM items WHERE label IN (${labels.map(() => '?').join(',')})`).all(...labels) as ItemRow[];
    for (const row of rows) out.set(row.label, toItem(row));
    return out;
  }

  list({ cursor, limit }: { cursor?: string; limit: number }): Page {
    const after = cursor ? decodeCursor(cursor) : 0;
    const rows = this.stmts.page.all(after, limit + 1) as ItemRow[];
    const items = rows.slice(0, limit).map(toItem);
    return { items, next: rows.length > limit ? encodeCursor(items[items.length - 1].label) : undefined };
  }

  stats(modelId: string): CatalogStats {
    return {
      items: (this.stmts.count.get() as { n: number }).n,
      itemsForModel: (this.stmts.countModel.get(modelId) as { n: number }).n,
      aliases: (this.stmts.countAliases.get() as { n: number }).n,
      seq: this.currentSeq(),
    };
  }

  currentSeq(): number {
    return (this.stmts.seq.get() as { seq: number }).seq;
  }

  *itemsSince(seq: number, modelId: string, chunk: number): Iterable<Item[]> {
    let after = 0;
    for (;;) {
      const rows = this.stmts.since.all(modelId, seq, after, chunk) as ItemRow[];
      if (rows.length === 0) return;
      after = rows[rows.length - 1].label;
      yield rows.map(toItem);
    }
  }

  removedSince(seq: number): number[] {
    return (this.stmts.removedSince.all(seq) as { label: number }[]).map((r) => r.label);
  }

  pruneRemovedUpTo(seq: number): void {
    this.stmts.prune.run(seq);
  }

  /**
   * A test of labels against `filter`: hnswlib asks about every candidate it meets (over a thousand per
   * filtered search), so fields are tested against their cached values where kept (FieldValues), the
   * rest with one statement prepared for this search. Equal in value and in JSON type (1 is not true),
   * as PostgreSQL's jsonb containment decides.
   */
  matcher(filter: MetadataFilter): (label: number) => boolean {
    // Plain field names only (checkFilter), so each can be quoted into a JSON path.
    const cached: Array<[Map<number, FieldValue>, FieldValue]> = [];
    const rest: Array<[string, FieldValue]> = [];
    for (const [field, value] of Object.entries(checkFilter(filter) ?? {})) {
      // Not built inside an open transaction: the scan would see its uncommitted rows.
      const values = this.fieldValues.values(field, () => this.scanField(field), !this.db.inTransaction);
      if (values) cached.push([values, value]);
      else rest.push([field, value]);
    }
    const inMemory = (label: number) => cached.every(([values, value]) => values.get(label) === value);
    if (rest.length === 0) return inMemory;
    // json_extract gives true as 1: the json_type test keeps `true` from matching 1 and 1 from matching true.
    const where = rest.map(([, v]) => (typeof v === 'boolean' ? `json_type(metadata, ?) = ?` : `json_type(metadata, ?) IN (?, ?) AND json_extract(metadata, ?) = ?`));
    // Field paths are bound as parameters too: nothing a client sends is ever part of the SQL text.
    const params = rest.flatMap(([field, v]) => {
      const path = `$."${field}"`;
      if (typeof v === 'boolean') return [path, v ? 'true' : 'false'];
      return [path, ...(typeof v === 'number' ? ['integer', 'real'] : ['text', 'text']), path, v];
    });
    const stmt = this.db.prepare(`SELECT 1 FROM items WHERE label = ? AND ${where.join(' AND ')}`).pluck();
    return (label) => inMemory(label) && stmt.get(label, ...params) !== undefined;
  }

  idsBySha256(sha256: string, limit: number): string[] {
    return (this.stmts.bySha.all(sha256, limit) as { id: string }[]).map((r) => r.id);
  }

  transaction<T>(fn: () => T): T {
    return this.write(fn);
  }

  /**
   * Runs a write in a transaction (a savepoint inside an open one). Field values change when their
   * transaction commits: at once here if this was the outermost, else at `settle` after the caller's
   * COMMIT. A failed write's changes are forgotten, as its savepoint or transaction was rolled back.
   */
  private write<T>(fn: () => T): T {
    const mark = this.pendingFields.length;
    let out: T;
    try {
      out = this.db.transaction(fn)();
    } catch (err) {
      this.pendingFields.length = this.db.inTransaction ? mark : 0;
      throw err;
    }
    this.settle();
    return out;
  }

  /** Notes a change to item `label` (undefined: removed) for the cached field values, read now. */
  private changed(label: number, metadata: Metadata | undefined): void {
    const change = this.fieldValues.change(metadata);
    if (change) this.pendingFields.push([label, change]);
  }

  /** Applies the noted changes once no transaction is open (after its COMMIT). Never throws. */
  settle(): void {
    if (this.db.inTransaction) return;
    for (const [label, change] of this.pendingFields) this.fieldValues.apply(label, change);
    this.pendingFields = [];
  }

  /** After a ROLLBACK of an outer transaction: forgets the changes it undid. */
  discardPending(): void {
    this.pendingFields = [];
  }

  /** Every item's value of `field`, for the cache. */
  private *scanField(field: string): Iterable<[number, FieldValue]> {
    const path = `$."${field}"`;
    for (const [label, type, value] of this.stmts.fieldScan.iterate(path, path) as Iterable<[number, string | null, unknown]>) {
      const v = fromJson(type, value);
      if (v !== undefined) yield [label, v];
    }
  }

  /** The underlying connection, for stores that share the catalogue's transactions (ingest jobs). */
  get database(): Database.Database {
    return this.db;
  }

  /** The journal mode in force ('wal'); exposed for checks and `likeness info`. */
  pragmaJournal(): string {
    return this.db.pragma('journal_mode', { simple: true }) as string;
  }

  close(): void {
    this.db.close();
  }
}
