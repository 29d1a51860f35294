/**
 * Stored image bytes (thumbnails, and originals where configured) in the catalogue database, keyed
 * by the sha256 of the original bytes: identical uploads share one row. It shares the catalogue's
 * connection, so a thumbnail commits in the same transaction as its item and survives kill -9 with it.
 */
import type Database from 'better-sqlite3';
import type { StoredImage } from '../images/thumbnail';
import type { ImageKind, ItemImageSet } from './item-images';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS images (
  sha256         TEXT PRIMARY KEY,
  thumbnail      BLOB,
  thumbnail_type TEXT,
  original       BLOB,
  original_type  TEXT
);
-- Bytes no item refers to any more go with the last such item, whatever code path deleted it.
CREATE TRIGGER IF NOT EXISTS images_release AFTER DELETE ON items
WHEN OLD.sha256 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM items WHERE sha256 = OLD.sha256)
BEGIN
  DELETE FROM images WHERE sha256 = OLD.sha256;
END;
`;

export class SqliteImageStore {
  private readonly stmts;

  /** `db` must already hold the catalogue's `items` table (the trigger refers to it). */
  constructor(db: Database.Database) {
    db.exec(SCHEMA);
    this.stmts = {
      put: db.prepare(
        `INSERT INTO images (sha256, thumbnail, thumbnail_type, original, original_type) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (sha256) DO UPDATE SET
           thumbnail = COALESCE(excluded.thumbnail, thumbnail), thumbnail_type = COALESCE(excluded.thumbnail_type, thumbnail_type),
           original = COALESCE(excluded.original, original), original_type = COALESCE(excluded.original_type, original_type)`,
      ),
      thumbnail: db.prepare(`SELECT thumbnail AS bytes, thumbnail_type AS type FROM images WHERE sha256 = ? AND thumbnail IS NOT NULL`),
      original: db.prepare(`SELECT original AS bytes, original_type AS type FROM images WHERE sha256 = ? AND original IS NOT NULL`),
      hasThumbnail: db.prepare(`SELECT 1 FROM images WHERE sha256 = ? AND thumbnail IS NOT NULL`),
      hasOriginal: db.prepare(`SELECT 1 FROM images WHERE sha256 = ? AND original IS NOT NULL`),
    };
  }

  /** Adds what `images` carries to the row of `sha256`; kinds it does not carry are left as they are. */
  put(sha256: string, images: ItemImageSet): void {
    const { thumbnail: t, original: o } = images;
    if (!t && !o) return;
    this.stmts.put.run(sha256, t?.bytes ?? null, t?.type ?? null, o?.bytes ?? null, o?.type ?? null);
  }

  get(sha256: string, kind: ImageKind): StoredImage | undefined {
    return this.stmts[kind].get(sha256) as StoredImage | undefined;
  }

  has(sha256: string, kind: ImageKind): boolean {
    return (kind === 'thumbnail' ? this.stmts.hasThumbnail : this.stmts.hasOriginal).get(sha256) !== undefined;
  }
}
