/**
 * Ingest sources turned into a plan: one PlannedItem (id, where its bytes are, metadata) per image.
 *   folder:   every image file under it; id = relative path, metadata {path, folder}
 *   manifest: CSV (header row) or JSONL; `path` required (relative to the manifest's folder), `id`
 *             optional (default: path); every other column/key becomes metadata
 *   tar:      every image entry of an uncompressed tar; id = entry name
 */
import { parse as csvParser } from 'csv-parse';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PlannedItem } from '../catalog/jobs';
import { validateId, validateMetadata } from '../catalog/service';
import { badRequest, LikenessError } from '../errors';
import { AllowedRoots, forbiddenPath } from './paths';
import { listTar } from './tar';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.heic', '.heif', '.tif', '.tiff']);

/**
 * Image files under `root`, sorted, as '/'-separated paths relative to it. Symlinks are not followed.
 * Each folder is read asynchronously and sorted on its own, so a server listing a big tree keeps
 * answering meanwhile: sorting a folder's entries by name, with '/' after each sub-folder's name,
 * and walking depth first gives the same order as sorting all the paths at once.
 */
export async function listImages(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = (await fs.promises.readdir(path.join(root, rel), { withFileTypes: true }))
      .filter((e) => e.isDirectory() || (e.isFile() && isImage(e.name)))
      .map((e) => ({ name: e.name, dir: e.isDirectory(), key: e.isDirectory() ? `${e.name}/` : e.name }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const entry of entries) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.dir) await walk(child);
      else out.push(child);
    }
  };
  await walk('');
  return out;
}

/** `items.map(fn)`, with a turn of the event loop every PLAN_YIELD_EVERY items. */
async function mapInPieces<T, U>(items: T[], fn: (item: T) => U): Promise<U[]> {
  const out: U[] = [];
  for (let i = 0; i < items.length; i++) {
    if (i % PLAN_YIELD_EVERY === PLAN_YIELD_EVERY - 1) await yieldToEventLoop();
    out.push(fn(items[i]));
  }
  return out;
}

/** Rows checked between turns of the event loop while planning: searches wait at most this long. */
const PLAN_YIELD_EVERY = 2000;

export type SourceType = 'folder' | 'manifest' | 'tar';
export interface IngestSource {
  type: SourceType;
  path: string;
}

/** Largest manifest read into memory (a million rows of a few columns). */
const MAX_MANIFEST_BYTES = 512 * 1024 * 1024;

const isImage = (name: string) => IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());

async function manifestRows(file: string): Promise<Record<string, unknown>[]> {
  const stat = await fs.promises.stat(file);
  if (stat.size > MAX_MANIFEST_BYTES) throw new LikenessError(413, 'MANIFEST_TOO_LARGE', `manifest is ${stat.size} bytes; the limit is ${MAX_MANIFEST_BYTES}`);
  const text = await fs.promises.readFile(file, 'utf8');
  if (/\.(jsonl|ndjson)$/i.test(file)) {
    const rows: Record<string, unknown>[] = [];
    for (const [i, line] of text.split(/\r?\n/).entries()) {
      if (i % PLAN_YIELD_EVERY === PLAN_YIELD_EVERY - 1) await yieldToEventLoop();
      if (line.trim() === '') continue;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        throw badRequest('BAD_MANIFEST', `${path.basename(file)} line ${i + 1} is not valid JSON`);
      }
      if (typeof row !== 'object' || row === null || Array.isArray(row)) throw badRequest('BAD_MANIFEST', `${path.basename(file)} line ${i + 1} is not a JSON object`);
      rows.push(row as Record<string, unknown>);
    }
    return rows;
  }
  try {
    return await csvRows(text);
  } catch (err) {
    throw badRequest('BAD_MANIFEST', `${path.basename(file)} is not valid CSV: ${(err as Error).message}`);
  }
}

/** Characters of CSV parsed between turns of the event loop (a few milliseconds' work). */
const CSV_CHUNK = 64 * 1024;

/** CSV rows with a header, parsed a chunk at a time so the server keeps answering meanwhile. */
async function csvRows(text: string): Promise<Record<string, unknown>[]> {
  const parser = csvParser({ columns: true, skip_empty_lines: true, trim: true, bom: true });
  const rows: Record<string, unknown>[] = [];
  let failed = false;
  parser.on('readable', () => {
    let row: Record<string, unknown> | null;
    while ((row = parser.read() as Record<string, unknown> | null) !== null) rows.push(row);
  });
  const done = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('error', (err) => {
      failed = true;
      reject(err);
    });
  });
  // write() may throw the parse error itself (it then rejects `done` too, which is not awaited then):
  // handled here so it does not become an unhandled rejection that ends the process.
  done.catch(() => undefined);
  for (let i = 0; i < text.length && !failed; i += CSV_CHUNK) {
    parser.write(text.slice(i, i + CSV_CHUNK));
    await yieldToEventLoop();
  }
  if (!failed) parser.end();
  await done;
  return rows;
}

/**
 * Builds the plan. `roots` limits every path (the source and each manifest row) to the allowed roots;
 * undefined allows any path. Manifest rows whose path is outside the roots are refused as a whole job:
 * a manifest pointing outside is a configuration error worth stopping for.
 */
export async function planSource(source: IngestSource, roots: string[] | undefined): Promise<PlannedItem[]> {
  try {
    return await plan(source, roots);
  } catch (err) {
    throw sourceError(err);
  }
}

/**
 * A filesystem error met while planning, as the client's error: e.g. a root-owned `lost+found` in a
 * folder the server (running as an unprivileged user) cannot list.
 */
export function sourceError(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof LikenessError || typeof e?.code !== 'string' || typeof e.syscall !== 'string') return err;
  const where = typeof e.path === 'string' ? ` '${e.path.slice(0, 300)}'` : '';
  if (e.code === 'EACCES' || e.code === 'EPERM') return new LikenessError(403, 'SOURCE_UNREADABLE', `the server may not read${where} (permission denied)`);
  return badRequest('BAD_SOURCE', `cannot read${where}: ${e.code}`);
}

async function plan(source: IngestSource, roots: string[] | undefined): Promise<PlannedItem[]> {
  const allowed = new AllowedRoots(roots);
  const real = allowed.resolve(source.path);
  const stat = await fs.promises.stat(real);
  switch (source.type) {
    case 'folder': {
      if (!stat.isDirectory()) throw badRequest('BAD_SOURCE', `'${source.path}' is not a folder`);
      return mapInPieces(await listImages(real), (rel) => ({
        id: rel,
        path: path.join(real, rel),
        offset: null,
        size: null,
        metadata: { path: rel, folder: path.posix.dirname(rel) },
      }));
    }
    case 'manifest': {
      if (!stat.isFile()) throw badRequest('BAD_SOURCE', `'${source.path}' is not a file`);
      if (isImage(real)) throw badRequest('BAD_SOURCE', `'${source.path}' is an image, not a manifest: index a folder of images, a manifest (.csv, .jsonl) or a .tar archive`);
      if (/\.(gz|tgz|zst|bz2|xz|zip)$/i.test(real)) throw badRequest('BAD_SOURCE', `'${source.path}' is compressed: archives are read as plain .tar; unpack it first (e.g. gunzip)`);
      const base = path.dirname(real);
      const rows = await manifestRows(real);
      const planned: PlannedItem[] = [];
      const firstRow = new Map<string, number>();
      for (const [i, row] of rows.entries()) {
        if (i % PLAN_YIELD_EVERY === PLAN_YIELD_EVERY - 1) await yieldToEventLoop();
        const { path: rowPath, id, ...metadata } = row;
        if (typeof rowPath !== 'string' || rowPath === '') {
          const near = Object.keys(row).find((k) => k.toLowerCase() === 'path' && k !== 'path');
          throw badRequest('BAD_MANIFEST', `row ${i + 1} has no path${near ? ` (the column is '${near}'; it must be named 'path', and the id column 'id')` : ''}`);
        }
        const abs = path.resolve(base, rowPath);
        // Checked per row: a manifest inside a root may not point outside it.
        if (roots) allowed.check(abs);
        const itemId = id === undefined || id === '' ? rowPath : String(id);
        // Checked now, like the paths: a row no store could hold (a NUL in its id, metadata nested
        // too deep) is a broken manifest, not an item to fail halfway through the job.
        try {
          validateId(itemId);
          validateMetadata(metadata);
        } catch (err) {
          throw badRequest('BAD_MANIFEST', `row ${i + 1}: ${(err as Error).message}`);
        }
        // Two rows with one id: the second would silently replace the first.
        const earlier = firstRow.get(itemId);
        if (earlier !== undefined) throw badRequest('BAD_MANIFEST', `rows ${earlier + 1} and ${i + 1} both have the id '${itemId.slice(0, 200)}'`);
        firstRow.set(itemId, i);
        planned.push({ id: itemId, path: abs, offset: null, size: null, metadata });
      }
      return planned;
    }
    case 'tar': {
      if (!stat.isFile()) throw badRequest('BAD_SOURCE', `'${source.path}' is not a file`);
      let entries;
      try {
        entries = await listTar(real);
      } catch (err) {
        throw badRequest('BAD_ARCHIVE', (err as Error).message);
      }
      return mapInPieces(
        entries.filter((e) => isImage(e.name)),
        (e) => ({ id: e.name, path: real, offset: e.offset, size: e.size, metadata: { path: e.name, folder: path.posix.dirname(e.name) } }),
      );
    }
    default:
      throw badRequest('BAD_SOURCE', `source type must be folder, manifest or tar, got '${String((source as IngestSource).type)}'`);
  }
}

/**
 * Reads one planned item's bytes. With `roots` (for a job a client submitted), the path is checked again
 * now: a file that was inside a root when the job was planned may since have become a symlink to
 * somewhere else (a drop folder others can write to; jobs can wait in a queue or across a restart).
 */
export async function readPlanned(item: Pick<PlannedItem, 'path' | 'offset' | 'size'>, roots?: AllowedRoots): Promise<Buffer> {
  let file = item.path;
  let flags = fs.constants.O_RDONLY;
  if (roots) {
    file = await fs.promises.realpath(file); // a missing file stays ENOENT (FILE_NOT_FOUND)
    if (!roots.allows(file)) throw forbiddenPath(item.path);
    flags |= fs.constants.O_NOFOLLOW; // and may not turn into a symlink between the check and the open
  }
  const fh = await fs.promises.open(file, flags);
  try {
    if (item.offset === null || item.size === null) return await fh.readFile();
    const buf = Buffer.alloc(item.size);
    await fh.read(buf, 0, item.size, item.offset);
    return buf;
  } finally {
    await fh.close();
  }
}
