/**
 * A manifest file listing images: CSV with a header row, or JSONL with one object per line.
 * Columns / keys: `path` (required; relative paths are relative to the manifest's folder),
 * `id` (optional, default: the path), `label` (optional class name; empty means unknown).
 * Other columns are ignored here (they are catalogue metadata).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DatasetError } from './dataset';
import { FileListDataset, FileListOptions } from './folder-dataset';

export interface ManifestRow {
  path: string;
  id?: string;
  label?: string;
}

/** Splits one CSV line (RFC 4180 quoting: "a,b" and "" for a quote; a quoted field cannot span lines). */
export function parseCsvLine(line: string, where: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur === '') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new DatasetError(`${where}: unterminated quoted field`);
  out.push(cur);
  return out.map((s) => s.trim());
}

export function parseManifestText(text: string, file: string): ManifestRow[] {
  const lines = text.split(/\r?\n/);
  const rows: ManifestRow[] = [];
  if (file.toLowerCase().endsWith('.jsonl') || file.toLowerCase().endsWith('.ndjson')) {
    lines.forEach((line, i) => {
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
  const first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0) throw new DatasetError(`${file}: empty manifest`);
  const header = parseCsvLine(lines[first], `${file}:${first + 1}`).map((h) => h.toLowerCase());
  const col = (name: string): number => header.indexOf(name);
  if (col('path') < 0) throw new DatasetError(`${file}: the header row needs a 'path' column, got [${header.join(', ')}]`);
  for (let i = first + 1; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const cells = parseCsvLine(lines[i], `${file}:${i + 1}`);
    if (cells.length !== header.length) throw new DatasetError(`${file}:${i + 1}: ${cells.length} fields, the header has ${header.length}`);
    const p = cells[col('path')];
    if (!p) throw new DatasetError(`${file}:${i + 1}: empty path`);
    const id = col('id') >= 0 && cells[col('id')] !== '' ? cells[col('id')] : undefined;
    const label = col('label') >= 0 && cells[col('label')] !== '' ? cells[col('label')] : undefined;
    rows.push({ path: p, id, label });
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
