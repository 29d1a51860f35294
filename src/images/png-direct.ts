/**
 * A direct path for the commonest catalogue image of small models: a plain 8-bit PNG already at the
 * model's size and channel count (Fashion-MNIST-style catalogues). For such a file the sharp pipeline
 * in decode.ts is the identity, yet costs ~1 ms of libvips set-up per image, more than embedding it
 * with the shipped model; here it is a zlib inflate and a row unfilter (tens of microseconds).
 *
 * Anything unusual returns undefined and goes the sharp way, which also produces the errors: other
 * colour types, bit depths, interlacing, palette or transparency, any colour-management chunk (gAMA,
 * iCCP, sRGB, cHRM, sBIT), EXIF, a bad CRC, or data that does not inflate to exactly the image.
 * Chunk layout and filters: PNG specification (ISO/IEC 15948), sections 5 and 9.
 */
import * as zlib from 'node:zlib';

/** zlib.crc32 arrived in Node 20.15; on older releases the direct path is simply off. */
const crc32: ((data: Uint8Array) => number) | undefined = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Ancillary chunks that cannot change the decoded pixels. */
const HARMLESS = new Set(['tEXt', 'zTXt', 'iTXt', 'tIME', 'pHYs']);
/** Colour type → channels, for the two types taken here (0 grey, 2 RGB). */
const CHANNELS: Record<number, 1 | 3> = { 0: 1, 2: 3 };

export interface PlainPng {
  width: number;
  height: number;
  channels: 1 | 3;
  /** The concatenated IDAT data (zlib stream). */
  idat: Buffer[];
}

/** Parses and checks the chunks of a plain 8-bit grey or RGB PNG; undefined for anything else. */
export function parsePlainPng(bytes: Uint8Array): PlainPng | undefined {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!crc32 || b.length < 8 + 25 + 12 || !b.subarray(0, 8).equals(SIGNATURE)) return undefined;
  let pos = 8;
  let header: Omit<PlainPng, 'idat'> | undefined;
  const idat: Buffer[] = [];
  while (pos + 12 <= b.length) {
    const length = b.readUInt32BE(pos);
    const type = b.toString('latin1', pos + 4, pos + 8);
    const end = pos + 12 + length;
    if (end > b.length) return undefined;
    // The CRC covers type and data.
    if (crc32(b.subarray(pos + 4, pos + 8 + length)) !== b.readUInt32BE(pos + 8 + length)) return undefined;
    const data = b.subarray(pos + 8, pos + 8 + length);
    if (type === 'IHDR') {
      if (header || length !== 13) return undefined;
      const [depth, colour, compression, filter, interlace] = data.subarray(8, 13);
      const channels = CHANNELS[colour];
      if (depth !== 8 || !channels || compression !== 0 || filter !== 0 || interlace !== 0) return undefined;
      header = { width: data.readUInt32BE(0), height: data.readUInt32BE(4), channels };
    } else if (!header) {
      return undefined; // IHDR must come first
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      return header.width > 0 && header.height > 0 && idat.length > 0 ? { ...header, idat } : undefined;
    } else if (!HARMLESS.has(type)) {
      return undefined;
    }
    pos = end;
  }
  return undefined; // no IEND: truncated
}

const paeth = (a: number, b: number, c: number): number => {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
};

/** Inflates and unfilters the image rows; undefined when the data is not exactly one image. */
export function decodePlainPng(png: PlainPng): Buffer | undefined {
  const { width, height, channels } = png;
  const stride = width * channels;
  let raw: Buffer;
  try {
    raw = zlib.inflateSync(Buffer.concat(png.idat), { maxOutputLength: height * (stride + 1) + 1 });
  } catch {
    return undefined;
  }
  if (raw.length !== height * (stride + 1)) return undefined;
  const out = Buffer.alloc(height * stride);
  const bpp = channels; // bytes per pixel at depth 8
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const up = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[row + x - bpp] : 0;
      const b = y > 0 ? out[up + x] : 0;
      const c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
      let predictor: number;
      switch (filter) {
        case 0: predictor = 0; break;
        case 1: predictor = a; break;
        case 2: predictor = b; break;
        case 3: predictor = (a + b) >> 1; break;
        case 4: predictor = paeth(a, b, c); break;
        default: return undefined;
      }
      out[row + x] = (raw[src + x] + predictor) & 0xff;
    }
  }
  return out;
}
