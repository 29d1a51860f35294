/**
 * `openDataset(spec)`: the --data argument of `likeness train` → a Dataset.
 *   idx:fashion-mnist[:train|test]    Debian's Fashion-MNIST (or idx:<images>,<labels>)
 *   <dir>                             image folder, one sub-folder per class
 *   <file>.csv | <file>.jsonl         manifest with path, id, label
 */
import * as fs from 'node:fs';
import { Dataset, DatasetError, sliceDataset } from './dataset';
import { openImageFolder } from './folder-dataset';
import { openIdx } from './idx-dataset';
import { openManifest } from './manifest-dataset';

export interface OpenOptions {
  size: number;
  channels: 1 | 3;
  /** Only the first `limit` images, for quick runs and tests; the name then ends in `[:limit]`. */
  limit?: number;
  cacheBytes?: number;
}

export async function openDataset(spec: string, opts: OpenOptions): Promise<Dataset> {
  const { limit } = opts;
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) throw new DatasetError(`limit must be a positive integer, got ${limit}`);
  const ds = await openWhole(spec, opts);
  if (limit === undefined || limit >= ds.count) return ds;
  return sliceDataset(ds, 0, limit);
}

async function openWhole(spec: string, opts: OpenOptions): Promise<Dataset> {
  if (!spec) throw new DatasetError('no dataset given');
  // IDX keeps only the first `limit` images itself (and names them so): no subset on top.
  if (spec.startsWith('idx:')) return openIdx(spec, opts, opts.limit);
  if (/\.(csv|jsonl|ndjson)$/i.test(spec)) return openManifest(spec, opts);
  if (fs.existsSync(spec) && fs.statSync(spec).isDirectory()) return openImageFolder(spec, opts);
  if (!fs.existsSync(spec)) throw new DatasetError(`dataset ${spec} does not exist (expected a folder, a .csv/.jsonl manifest or idx:fashion-mnist)`);
  throw new DatasetError(`${spec} is neither a folder nor a .csv/.jsonl manifest`);
}
