/**
 * IDX files (the MNIST / Fashion-MNIST format, optionally gzipped).
 * Layout: magic (0x00 0x00 type ndims), ndims big-endian uint32 sizes, then the data.
 * Debian's `dataset-fashion-mnist` installs them under /usr/share/datasets/fashion-mnist.
 */
import * as fs from 'node:fs';
import { gunzipSync } from 'node:zlib';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
] as const;

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

const UBYTE = 0x08;

/** Parses an IDX buffer of unsigned bytes (the only type MNIST-style files use). */
export function parseIdx(buf: Buffer, where = 'IDX data'): IdxArray {
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new Error(`${where}: not an IDX file (bad magic)`);
  if (buf[2] !== UBYTE) throw new Error(`${where}: element type 0x${buf[2].toString(16)} is not supported (only unsigned bytes)`);
  const ndims = buf[3];
  const header = 4 + 4 * ndims;
  if (ndims === 0 || buf.length < header) throw new Error(`${where}: truncated header`);
  const shape = Array.from({ length: ndims }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  if (buf.length !== header + count) {
    throw new Error(`${where}: expected ${count} data bytes for shape [${shape.join(', ')}], found ${buf.length - header}`);
  }
  return { shape, data: new Uint8Array(buf.buffer, buf.byteOffset + header, count) };
}

export function readIdx(file: string): IdxArray {
  return parseIdx(fs.readFileSync(file), file);
}

export interface LabelledImages {
  /** [count, height, width] grayscale bytes, row-major. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
}

/** Reads an images file and its labels file and checks that they pair up. */
export function readIdxPair(imagesFile: string, labelsFile: string): LabelledImages {
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.shape.length !== 3) throw new Error(`${imagesFile}: expected 3 dimensions, got [${images.shape.join(', ')}]`);
  if (labels.shape.length !== 1 || labels.shape[0] !== images.shape[0]) {
    throw new Error(`${labelsFile}: ${labels.shape[0]} labels for ${images.shape[0]} images`);
  }
  const [count, height, width] = images.shape;
  return { images: images.data, labels: labels.data, count, height, width };
}

/** Fashion-MNIST split from a directory holding the four standard files (gzipped or not). */
export function readFashionMnist(split: 'train' | 'test', dir = FASHION_MNIST_DIR): LabelledImages {
  const prefix = split === 'train' ? 'train' : 't10k';
  const pick = (base: string): string => {
    for (const name of [`${base}.gz`, base]) if (fs.existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
    throw new Error(`${dir}/${base}(.gz) not found: install Debian's dataset-fashion-mnist, or run \`likeness data fetch fashion-mnist\` and pass its directory`);
  };
  return readIdxPair(pick(`${prefix}-images-idx3-ubyte`), pick(`${prefix}-labels-idx1-ubyte`));
}
