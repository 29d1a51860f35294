/**
 * An image folder: one sub-folder per class (root/<class>/<image>), labels from the sub-folder names
 * in sorted order; images directly in root (and no sub-folders) make an unlabelled dataset.
 * Images are decoded with sharp on fetch, and kept in memory after the first time when the
 * whole set fits `cacheBytes`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkIndices, Dataset, DatasetError } from './dataset';
import { sniffFormat } from '../images/decode';
import { decodeFileToPixels, DecodeSpec, IMAGE_EXTENSIONS } from './decode';

export const DEFAULT_CACHE_BYTES = 1 << 30;

export interface FileListOptions extends DecodeSpec {
  /** Keep decoded images in memory when the whole dataset takes at most this many bytes. Default 1 GiB. */
  cacheBytes?: number;
}

/** Images listed by path (and optional label), decoded on demand. Shared by folder and manifest sources. */
export class FileListDataset implements Dataset {
  readonly count: number;
  readonly size: number;
  readonly channels: 1 | 3;
  private readonly cache?: Uint8Array;
  private readonly cached?: Uint8Array;

  constructor(
    readonly name: string,
    readonly files: string[],
    private readonly spec: FileListOptions,
    readonly labels?: Int32Array,
    readonly classes?: string[],
    readonly ids?: string[],
  ) {
    if (files.length === 0) throw new DatasetError(`${name}: no images found`);
    checkHeaders(name, files);
    this.count = files.length;
    this.size = spec.size;
    this.channels = spec.channels;
    const bytes = this.count * spec.size * spec.size * spec.channels;
    if (bytes <= (spec.cacheBytes ?? DEFAULT_CACHE_BYTES)) {
      this.cache = new Uint8Array(bytes);
      this.cached = new Uint8Array(this.count);
    }
  }

  async fetch(indices: ArrayLike<number>): Promise<Uint8Array> {
    checkIndices(this, indices);
    const per = this.size * this.size * this.channels;
    const out = new Uint8Array(indices.length * per);
    await Promise.all(
      Array.from(indices as ArrayLike<number>, async (k, i) => {
        if (this.cache && this.cached![k]) {
          out.set(this.cache.subarray(k * per, (k + 1) * per), i * per);
          return;
        }
        const px = await decodeFileToPixels(this.files[k], this.spec);
        out.set(px, i * per);
        if (this.cache) {
          this.cache.set(px, k * per);
          this.cached![k] = 1;
        }
      }),
    );
    return out;
  }
}

/**
 * Reads the first bytes of every file and refuses the dataset if any is missing or not an accepted
 * image format, naming them: images are only decoded when first fetched, and a bad file found hours
 * into training would end the run. (A file with a good header can still fail to decode later.)
 */
function checkHeaders(name: string, files: string[]): void {
  const bad: string[] = [];
  const head = Buffer.alloc(32);
  for (const file of files) {
    let fd: number | undefined;
    try {
      fd = fs.openSync(file, 'r');
      const n = fs.readSync(fd, head, 0, head.length, 0);
      if (!sniffFormat(head.subarray(0, n))) bad.push(`${file} (not an image in an accepted format)`);
    } catch (err) {
      bad.push(`${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
  if (bad.length > 0) throw new DatasetError(`${name}: ${bad.length} of ${files.length} files cannot be used: ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? ', ...' : ''}`);
}

/** Image files by extension; hidden files are skipped (macOS leaves `._name.png` resource forks beside images). */
function isImage(name: string): boolean {
  return !name.startsWith('.') && IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase());
}

export function openImageFolder(root: string, spec: FileListOptions): FileListDataset {
  if (!fs.existsSync(root)) throw new DatasetError(`image folder ${root} does not exist`);
  if (!fs.statSync(root).isDirectory()) throw new DatasetError(`${root} is not a directory`);
  const entries = fs.readdirSync(root, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
  const classes = entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  const files: string[] = [];
  const labels: number[] = [];
  if (classes.length === 0) {
    for (const e of entries) if (e.isFile() && isImage(e.name)) files.push(path.join(root, e.name));
    if (files.length === 0) throw new DatasetError(`image folder ${root} has no images (${[...IMAGE_EXTENSIONS].join(', ')}) and no class sub-folders`);
    return new FileListDataset(`folder:${root}`, files, spec, undefined, undefined, files.map((f) => path.relative(root, f)));
  }
  classes.forEach((cls, label) => {
    const dir = path.join(root, cls);
    const names = fs.readdirSync(dir).filter(isImage).sort();
    for (const n of names) {
      files.push(path.join(dir, n));
      labels.push(label);
    }
  });
  if (files.length === 0) throw new DatasetError(`image folder ${root}: the class sub-folders (${classes.join(', ')}) hold no images`);
  return new FileListDataset(`folder:${root}`, files, spec, Int32Array.from(labels), classes, files.map((f) => path.relative(root, f)));
}
