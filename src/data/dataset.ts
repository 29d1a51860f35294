/**
 * The training side's view of images: a `Dataset` has a count, optional labels, and fetches a batch
 * of raw pixels already at the model's input size and channel count (row-major, channels last,
 * bytes), the same layout `pixelsToTensor` takes. Sources: IDX files (idx-dataset.ts), an image
 * folder (folder-dataset.ts), a CSV/JSONL manifest (manifest-dataset.ts); `openDataset` picks one
 * from a spec string.
 */

export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

export interface Dataset {
  /** Where the images come from, for logs and the manifest (e.g. 'idx:fashion-mnist:train'). */
  readonly name: string;
  readonly count: number;
  /** Side of the square images `fetch` returns. */
  readonly size: number;
  readonly channels: 1 | 3;
  /** Class index per image (−1: unknown), when the source has labels. */
  readonly labels?: Int32Array;
  /** Class names, indexed by label. */
  readonly classes?: string[];
  /** External id per image (file path or the manifest's id), when the source has them. */
  readonly ids?: string[];
  /** Pixels of the images at `indices`: [indices.length, size, size, channels] bytes. */
  fetch(indices: ArrayLike<number>): Promise<Uint8Array>;
}

export function checkIndices(ds: Pick<Dataset, 'count' | 'name'>, indices: ArrayLike<number>): void {
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i];
    if (!Number.isInteger(k) || k < 0 || k >= ds.count) throw new RangeError(`${ds.name}: index ${k} is out of range [0, ${ds.count})`);
  }
}

/** Images held in memory: pixels [count, size, size, channels]. */
export class ArrayDataset implements Dataset {
  readonly count: number;

  constructor(
    readonly name: string,
    readonly pixels: Uint8Array,
    readonly size: number,
    readonly channels: 1 | 3,
    readonly labels?: Int32Array,
    readonly classes?: string[],
    readonly ids?: string[],
  ) {
    const per = size * size * channels;
    if (pixels.length % per !== 0) throw new DatasetError(`${name}: ${pixels.length} bytes is not a whole number of ${size}x${size}x${channels} images`);
    this.count = pixels.length / per;
    if (labels && labels.length !== this.count) throw new DatasetError(`${name}: ${labels.length} labels for ${this.count} images`);
  }

  async fetch(indices: ArrayLike<number>): Promise<Uint8Array> {
    return this.fetchSync(indices);
  }

  fetchSync(indices: ArrayLike<number>): Uint8Array {
    checkIndices(this, indices);
    const per = this.size * this.size * this.channels;
    const out = new Uint8Array(indices.length * per);
    for (let i = 0; i < indices.length; i++) out.set(this.pixels.subarray(indices[i] * per, (indices[i] + 1) * per), i * per);
    return out;
  }
}

/** Images `start` to `end - 1` of `ds`, named like a Python slice: `name[start:end]` (`[:end]` from 0). */
export function sliceDataset(ds: Dataset, start: number, end: number): Dataset {
  return subsetDataset(ds, Array.from({ length: end - start }, (_, i) => start + i), `${ds.name}[${start || ''}:${end === ds.count && start > 0 ? '' : end}]`);
}

/**
 * The last `n` images become the held-out part (`test`) and the ones before them `train`: eval's
 * `--holdout` queries, train's `--holdout` monitor set. Both commands cut at the same place, so a
 * model trained with `train --holdout n` is measured by `eval --holdout n` on images it never saw.
 */
export function holdOut(ds: Dataset, n: number): { train: Dataset; test: Dataset } {
  if (!(Number.isInteger(n) && n > 0 && n < ds.count)) throw new DatasetError(`--holdout must be between 1 and ${ds.count - 1} for ${ds.name} (${ds.count} images), got ${n}`);
  const cut = ds.count - n;
  return { train: sliceDataset(ds, 0, cut), test: sliceDataset(ds, cut, ds.count) };
}

/** The images of `ds` at `indices`, renumbered 0..indices.length-1. */
export function subsetDataset(ds: Dataset, indices: ArrayLike<number>, name = `${ds.name}[subset ${indices.length}]`): Dataset {
  checkIndices(ds, indices);
  const map = Int32Array.from(indices as ArrayLike<number>);
  return {
    name,
    count: map.length,
    size: ds.size,
    channels: ds.channels,
    labels: ds.labels ? map.map((i) => ds.labels![i]) : undefined,
    classes: ds.classes,
    ids: ds.ids ? Array.from(map, (i) => ds.ids![i]) : undefined,
    fetch: (idx) => {
      checkIndices({ name, count: map.length }, idx);
      return ds.fetch(Array.from(idx as ArrayLike<number>, (i) => map[i]));
    },
  };
}

/** Reads a whole dataset into memory (for k-NN banks and small training sets). */
export async function materialize(ds: Dataset, batch = 256): Promise<ArrayDataset> {
  if (ds instanceof ArrayDataset) return ds;
  const per = ds.size * ds.size * ds.channels;
  const pixels = new Uint8Array(ds.count * per);
  for (let s = 0; s < ds.count; s += batch) {
    const idx = Array.from({ length: Math.min(batch, ds.count - s) }, (_, i) => s + i);
    pixels.set(await ds.fetch(idx), s * per);
  }
  return new ArrayDataset(ds.name, pixels, ds.size, ds.channels, ds.labels, ds.classes, ds.ids);
}
