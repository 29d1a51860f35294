/**
 * IDX files (MNIST, Fashion-MNIST) as a Dataset. Images are greyscale; they are resized with sharp
 * when the model input is not the native size, and the grey value is copied to three channels for
 * an RGB model.
 */
import sharp from 'sharp';
import { ArrayDataset, DatasetError } from './dataset';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, LabelledImages, readFashionMnist, readIdxPair } from './idx';

export interface IdxOptions {
  size: number;
  channels: 1 | 3;
}

async function convert(src: LabelledImages, opts: IdxOptions): Promise<Uint8Array> {
  if (src.height !== src.width) throw new DatasetError(`IDX images are ${src.height}x${src.width}; only square images are supported`);
  const native = src.height;
  const perIn = native * native;
  let grey = src.images.subarray(0, src.count * perIn);
  if (opts.size !== native) {
    const out = new Uint8Array(src.count * opts.size * opts.size);
    for (let i = 0; i < src.count; i++) {
      const img = Buffer.from(src.images.subarray(i * perIn, (i + 1) * perIn));
      const px = await sharp(img, { raw: { width: native, height: native, channels: 1 } })
        .resize(opts.size, opts.size, { fit: 'fill' })
        .greyscale()
        .raw()
        .toBuffer();
      out.set(px.subarray(0, opts.size * opts.size), i * opts.size * opts.size);
    }
    grey = out;
  }
  if (opts.channels === 1) return Uint8Array.from(grey);
  const rgb = new Uint8Array(grey.length * 3);
  for (let i = 0; i < grey.length; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = grey[i];
  return rgb;
}

/** Labelled images from an IDX pair (already read) as an in-memory dataset. */
export async function idxDataset(name: string, src: LabelledImages, opts: IdxOptions, classes?: string[]): Promise<ArrayDataset> {
  return new ArrayDataset(name, await convert(src, opts), opts.size, opts.channels, Int32Array.from(src.labels), classes);
}

/**
 * Spec forms: 'idx:fashion-mnist' (train split), 'idx:fashion-mnist:test', 'idx:fashion-mnist:train:<dir>',
 * 'idx:<images-file>,<labels-file>'.
 */
export async function openIdx(spec: string, opts: IdxOptions, limit?: number): Promise<ArrayDataset> {
  const body = spec.replace(/^idx:/, '');
  let src: LabelledImages;
  let classes: string[] | undefined;
  let name = spec;
  if (body === 'fashion-mnist' || body.startsWith('fashion-mnist:')) {
    const [, split = 'train', dir = FASHION_MNIST_DIR] = body.split(':');
    if (split !== 'train' && split !== 'test') throw new DatasetError(`${spec}: split must be 'train' or 'test', got '${split}'`);
    src = readFashionMnist(split, dir);
    classes = [...FASHION_MNIST_CLASSES];
    name = `idx:fashion-mnist:${split}`;
  } else {
    const files = body.split(',');
    if (files.length !== 2) throw new DatasetError(`${spec}: expected idx:fashion-mnist[:train|test] or idx:<images-file>,<labels-file>`);
    src = readIdxPair(files[0], files[1]);
  }
  if (limit !== undefined && limit < src.count) {
    const per = src.height * src.width;
    src = { ...src, count: limit, images: src.images.subarray(0, limit * per), labels: src.labels.subarray(0, limit) };
    name = `${name}[:${limit}]`;
  }
  return idxDataset(name, src, opts, classes);
}
