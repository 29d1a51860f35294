/**
 * Indexes every image under a folder: id = path relative to the folder (with '/'), metadata
 * {path, folder}. Already-indexed identical files are skipped, so a rerun resumes an interrupted import.
 * A file that fails to decode is reported and skipped; it does not stop the import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LikenessError } from '../errors';
import type { CatalogService } from './service';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.heic', '.heif', '.tif', '.tiff']);

export interface ImportProgress {
  total: number;
  done: number;
  added: number;
  skipped: number;
  failed: Array<{ id: string; code: string; message: string }>;
}

/** Image files under `root`, sorted, as paths relative to it. Symlinks are not followed. */
export function listImages(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(child);
      else if (entry.isFile() && IMAGE_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) out.push(child);
    }
  };
  walk('');
  return out.sort();
}

export async function importFolder(
  service: CatalogService,
  root: string,
  opts: { batch: number; onProgress?: (p: ImportProgress) => void },
): Promise<ImportProgress> {
  if (!fs.statSync(root, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${root} is not a folder`);
  const files = listImages(root);
  const progress: ImportProgress = { total: files.length, done: 0, added: 0, skipped: 0, failed: [] };
  for (let i = 0; i < files.length; i += opts.batch) {
    const batch = files.slice(i, i + opts.batch).map((rel) => ({
      id: rel,
      image: fs.readFileSync(path.join(root, rel)),
      metadata: { path: rel, folder: path.posix.dirname(rel) },
    }));
    try {
      const r = await service.addMany(batch);
      progress.added += r.added;
      progress.skipped += r.skipped;
    } catch {
      // One bad file fails the whole batch: retry one by one to find and report it.
      for (const item of batch) {
        try {
          const r = await service.addMany([item]);
          progress.added += r.added;
          progress.skipped += r.skipped;
        } catch (err) {
          const code = err instanceof LikenessError ? err.code : 'INTERNAL';
          progress.failed.push({ id: item.id, code, message: (err as Error).message });
        }
      }
    }
    progress.done += batch.length;
    opts.onProgress?.(progress);
  }
  return progress;
}
