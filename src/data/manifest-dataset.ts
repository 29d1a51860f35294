/**
 * A manifest file listing images: CSV with a header row, or JSONL with one object per line.
 * Columns / keys: `path` (required; relative paths are relative to the manifest's folder),
 * `id` (optional, default: the path), `label` (optional class name; empty means unknown).
 * Other columns are ignored here (they are catalogue metadata).
 */
import { CsvError, parse as parseCsv } from 'csv-parse/sync';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DatasetError } from './dataset';
import { FileListDataset, FileListOptions } from './folder-dataset';

export interface ManifestRow {
  path: string;
  id?: string;
  label?: string;
}

export function parseManifestText(text: string, file: string): ManifestRow[] {
  const rows: ManifestRow[] = [];
  if (file.toLowerCase().endsWith('.jsonl') || file.toLowerCase().endsWith('.ndjson')) {
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === '') return;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (err) {
        throw new DatasetError(`${file}:${i + 1}: not valid JSON (${(err as Error).message})`);
      }
      const o = obj as Record<string, unknown>;
      if (typeof o !== 'object' || o === null || typeof o.path !== 'string' || o.path === '') throw new DatasetError(`${file}:${i + 1}: each line needs a non-empty string "path"`);
      const label = o.label === undefined || o.label === null || o.label === '' ? undefined : String(o.label);
      rows.push({ path: o.path, id: o.id === undefined ? undefined : String(o.id), label });
    });
    return rows;
  }
  // csv-parse, as the ingest manifests use: RFC 4180 quoting, quoted fields over several lines, a BOM.
  let header: string[] | undefined;
  let records: { record: Record<string, string>; info: { lines: number } }[];
  try {
    records = parseCsv(text, {
      columns: (names: string[]) => (header = names.map((h) => h.toLowerCase())),
      info: true,
      bom: true,
      trim: true,
      skip_empty_lines: true,
    });
  } catch (err) {
    if (!(err instanceof CsvError)) throw err;
    const e = err as CsvError & { lines?: number; record?: unknown[] };
    const detail = e.code === 'CSV_RECORD_INCONSISTENT_COLUMNS' && header && e.record ? `${e.record.length} fields, the header has ${header.length}` : e.message;
    throw new DatasetError(`${file}:${e.lines}: ${detail}`);
  }
  if (!header) throw new DatasetError(`${file}: empty manifest`);
  if (!header.includes('path')) throw new DatasetError(`${file}: the header row needs a 'path' column, got [${header.join(', ')}]`);
  for (const { record, info } of records) {
    const p = record.path;
    if (!p) throw new DatasetError(`${file}:${info.lines}: empty path`);
    rows.push({ path: p, id: record.id || undefined, label: record.label || undefined });
  }
  return rows;
}

export function openManifest(file: string, spec: FileListOptions): FileListDataset {
  if (!fs.existsSync(file)) throw new DatasetError(`manifest ${file} does not exist`);
  const rows = parseManifestText(fs.readFileSync(file, 'utf8'), file);
  if (rows.length === 0) throw new DatasetError(`${file}: the manifest lists no images`);
  const base = path.dirname(path.resolve(file));
  const files = rows.map((r) => path.resolve(base, r.path));
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length > 0) throw new DatasetError(`${file}: ${missing.length} listed image(s) do not exist, first: ${missing[0]}`);
  const ids = rows.map((r) => r.id ?? r.path);
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw new DatasetError(`${file}: duplicate id '${id}'`);
    seen.add(id);
  }
  const labelled = rows.some((r) => r.label !== undefined);
  if (!labelled) return new FileListDataset(`manifest:${file}`, files, spec, undefined, undefined, ids);
  const classes = [...new Set(rows.flatMap((r) => (r.label === undefined ? [] : [r.label])))].sort();
  const labels = Int32Array.from(rows, (r) => (r.label === undefined ? -1 : classes.indexOf(r.label)));
  return new FileListDataset(`manifest:${file}`, files, spec, labels, classes, ids);
}
