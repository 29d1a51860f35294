/**
 * Untrusted image bytes → model-ready pixels, with sharp (libvips).
 *
 * Header first (cheap): reject what is not an image, formats we do not take, and decompression bombs
 * before any pixel is decoded. Then one libvips pipeline: first frame only, EXIF rotation, alpha
 * flattened onto the model's background, colour converted to the model's channels (CMYK and 16-bit
 * inputs come out as 8-bit sRGB or grey), resized to the model's square input.
 */
import sharp, { Metadata, OutputInfo } from 'sharp';
import { badRequest, tooLarge, unprocessable, unsupportedMedia } from '../errors';
import type { InputSpec } from '../model/manifest';
import { decodePlainPng, parsePlainPng } from './png-direct';

export const RASTER_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'avif', 'heif', 'tiff'] as const;

export interface DecodeLimits {
  /** Largest width x height accepted (decompression-bomb guard). */
  maxPixels: number;
  /** SVG can reference external resources; off unless an operator opts in. */
  allowSvg: boolean;
  /** libvips gives up on one image after this long. */
  timeoutSeconds: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxPixels: 40_000_000, allowSvg: false, timeoutSeconds: 10 };

/** libvips messages can run to several lines of internals; clients get the first, shortened. */
const reason = (err: unknown): string => String((err as Error).message ?? err).split('\n')[0].slice(0, 200);

/** Bytes [from, to) as latin1, cut to the buffer: a 3-byte file has no bytes 8-12 (and must not throw). */
const ascii = (b: Uint8Array, from: number, to: number): string => {
  const start = Math.min(from, b.length);
  return Buffer.from(b.buffer, b.byteOffset + start, Math.max(0, Math.min(b.length, to) - start)).toString('latin1');
};

/**
 * The raster format the bytes start like, from magic numbers; undefined for anything else. libvips
 * has many more loaders (SVG, PDF, vips, matrix, ...); only bytes that look like an accepted format
 * ever reach it, so none of the others can be tricked into parsing an upload.
 */
export function sniffFormat(b: Uint8Array): (typeof RASTER_FORMATS)[number] | undefined {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && ascii(b, 0, 8) === '\x89PNG\r\n\x1a\n') return 'png';
  if (ascii(b, 0, 4) === 'GIF8') return 'gif';
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  const tiff = ascii(b, 0, 4);
  if (tiff === 'II*\0' || tiff === 'MM\0*' || tiff === 'II+\0' || tiff === 'MM\0+') return 'tiff';
  // ISO-BMFF: AVIF and HEIF start with an 'ftyp' box.
  if (ascii(b, 4, 8) === 'ftyp' && /^(avi[fs]|hei[cfsx]|mif1|msf1|hevc|hevx)$/.test(ascii(b, 8, 12))) return ascii(b, 8, 11) === 'avi' ? 'avif' : 'heif';
  return undefined;
}

/** SVG (or XML that may be one) after an optional BOM and whitespace. */
const looksLikeSvg = (b: Uint8Array): boolean => /^(\ufeff|\xef\xbb\xbf)?\s*<(\?xml|!--|!doctype\s+svg|svg)/i.test(ascii(b, 0, 256));

/**
 * Whether libvips may be shown these bytes at all: an accepted raster format by its magic number, or
 * SVG where allowed. Every path that hands untrusted bytes to sharp asks this first.
 */
export function mayDecode(bytes: Uint8Array, limits: DecodeLimits): boolean {
  return sniffFormat(bytes) !== undefined || (limits.allowSvg && looksLikeSvg(bytes));
}

export interface ImageHeader {
  format: string;
  width: number;
  height: number;
}

/** Reads and checks the header. Throws 400 EMPTY_IMAGE, 415 NOT_AN_IMAGE / UNSUPPORTED_FORMAT, 413 IMAGE_TOO_LARGE, 422 CORRUPT_IMAGE. */
export async function inspectImage(bytes: Uint8Array, limits: DecodeLimits): Promise<ImageHeader> {
  if (bytes.length === 0) throw badRequest('EMPTY_IMAGE', 'the image is empty (0 bytes)');
  if (!sniffFormat(bytes)) {
    const svg = looksLikeSvg(bytes);
    if (svg && !limits.allowSvg) throw unsupportedMedia('UNSUPPORTED_FORMAT', `image format 'svg' is not accepted (accepted: ${RASTER_FORMATS.join(', ')}; the server's --allow-svg accepts SVG)`);
    if (!svg) throw unsupportedMedia('NOT_AN_IMAGE', 'the upload is not an image in a supported format');
  }
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    // The bytes start like an accepted format, so a failure here means a damaged file.
    throw unprocessable('CORRUPT_IMAGE', `the image could not be read: ${reason(err)}`);
  }
  const format = meta.format ?? 'unknown';
  const allowed: readonly string[] = limits.allowSvg ? [...RASTER_FORMATS, 'svg'] : RASTER_FORMATS;
  if (!allowed.includes(format)) {
    throw unsupportedMedia('UNSUPPORTED_FORMAT', `image format '${format}' is not accepted (accepted: ${allowed.join(', ')})`);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width <= 0 || height <= 0) throw unprocessable('CORRUPT_IMAGE', 'the image has no size');
  // Compare as numbers of pixels, not bytes: a tiny PNG can declare 50,000 x 50,000.
  if (width * height > limits.maxPixels) {
    throw tooLarge('IMAGE_TOO_LARGE', `image is ${width}x${height} = ${width * height} pixels; the limit is ${limits.maxPixels}`, {
      width,
      height,
      maxPixels: limits.maxPixels,
    });
  }
  return { format, width, height };
}

/**
 * Decodes one image to `size x size x channels` bytes, row-major, channels last.
 * Throws the errors of inspectImage, and 422 CORRUPT_IMAGE / DECODE_TIMEOUT when decoding fails.
 */
export async function decodeToPixels(bytes: Uint8Array, input: InputSpec, limits: DecodeLimits): Promise<Buffer> {
  const png = parsePlainPng(bytes);
  if (png && png.width === input.size && png.height === input.size && png.channels === input.channels && png.width * png.height <= limits.maxPixels) {
    // Already the model's size and channels: the sharp pipeline below would be the identity.
    const pixels = decodePlainPng(png);
    if (pixels) return pixels;
  }
  return decodeWithSharp(bytes, input, limits);
}

/** decodeToPixels without the direct PNG path (exported so tests can hold the two side by side). */
export async function decodeWithSharp(bytes: Uint8Array, input: InputSpec, limits: DecodeLimits): Promise<Buffer> {
  await inspectImage(bytes, limits);
  const { size, channels, fit, background } = input;
  let pipeline = sharp(bytes, { failOn: 'truncated', limitInputPixels: limits.maxPixels, pages: 1, page: 0 })
    .timeout({ seconds: limits.timeoutSeconds })
    .autoOrient()
    .flatten({ background });
  pipeline = channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline
      .resize(size, size, { fit, background, kernel: 'lanczos3' })
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    const msg = reason(err);
    if (/timeout/i.test(msg)) throw unprocessable('DECODE_TIMEOUT', `decoding took longer than ${limits.timeoutSeconds} s`);
    throw unprocessable('CORRUPT_IMAGE', `the image is truncated or corrupt: ${msg}`);
  }
  if (out.info.channels !== channels) throw new Error(`decoder produced ${out.info.channels} channels, expected ${channels}`);
  return out.data;
}
