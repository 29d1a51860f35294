/**
 * Thumbnails for the web page: a bounded WebP (or the image itself, when already small) made once,
 * when an item is stored, so browsing the catalogue never decodes originals. Same untrusted-bytes
 * guards as decode.ts (accepted formats only, pixel limit, timeout, first frame only).
 */
import sharp from 'sharp';
import { DecodeLimits, mayDecode } from './decode';
import { parsePlainPng } from './png-direct';

export interface StoredImage {
  bytes: Buffer;
  /** MIME type, e.g. image/webp. */
  type: string;
}

const MIME: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
  heif: 'image/heif',
  tiff: 'image/tiff',
  svg: 'image/svg+xml',
};

/** MIME type of a format name as sharp reports it. */
export const mimeOf = (format: string | undefined): string => (format && MIME[format]) || 'application/octet-stream';

/** Formats every browser shows as they are: a small one of these is its own thumbnail. */
const AS_IS = new Set(['jpeg', 'png', 'webp']);
/** Largest file kept as its own thumbnail (a 128 px WebP is a few KB). */
const AS_IS_MAX_BYTES = 16 * 1024;

/**
 * Fits the image inside `size` x `size` (never enlarged: a 28 px image stays 28 px, the browser
 * scales it), EXIF-rotated, alpha kept. Small images are encoded losslessly, where lossy WebP would
 * smear the few pixels there are. An image that already fits, needs no rotation and is a small
 * JPEG/PNG/WebP is kept as it is: re-encoding it would cost a second libvips pipeline per item
 * (for catalogues of small images, about as much as decoding for the model) and gain nothing.
 */
export async function makeThumbnail(bytes: Uint8Array, size: number, limits: DecodeLimits): Promise<StoredImage> {
  const small = 64;
  const png = bytes.length <= AS_IS_MAX_BYTES ? parsePlainPng(bytes) : undefined;
  if (png && Math.max(png.width, png.height) <= size) return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), type: 'image/png' };
  // Bulk ingest makes thumbnails while the same bytes are still being checked for the model.
  if (!mayDecode(bytes, limits)) throw new Error('not an image in an accepted format');
  const meta = await sharp(bytes, { limitInputPixels: limits.maxPixels }).metadata();
  const longest = Math.max(meta.width ?? 0, meta.height ?? 0);
  const upright = (meta.orientation ?? 1) === 1;
  if (meta.format && AS_IS.has(meta.format) && longest > 0 && longest <= size && upright && (meta.pages ?? 1) === 1 && bytes.length <= AS_IS_MAX_BYTES) {
    return { bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), type: mimeOf(meta.format) };
  }
  const data = await sharp(bytes, { failOn: 'truncated', limitInputPixels: limits.maxPixels, pages: 1, page: 0 })
    .timeout({ seconds: limits.timeoutSeconds })
    .autoOrient()
    .resize(size, size, { fit: 'inside', withoutEnlargement: true })
    .webp(longest <= small ? { lossless: true } : { quality: 80 })
    .toBuffer();
  return { bytes: data, type: 'image/webp' };
}
