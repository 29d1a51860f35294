/**
 * Thumbnails for the web page: a bounded WebP made once, when an item is stored, so browsing the
 * catalogue never decodes originals. Same untrusted-bytes guards as decode.ts (pixel limit, timeout,
 * first frame only).
 */
import sharp from 'sharp';
import type { DecodeLimits } from './decode';

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

/**
 * Fits the image inside `size` x `size` (never enlarged: a 28 px image stays 28 px, the browser
 * scales it), EXIF-rotated, alpha kept. Small images are encoded losslessly, where lossy WebP would
 * smear the few pixels there are.
 */
export async function makeThumbnail(bytes: Uint8Array, size: number, limits: DecodeLimits): Promise<StoredImage> {
  const small = 64;
  const pipeline = sharp(bytes, { failOn: 'truncated', limitInputPixels: limits.maxPixels, pages: 1, page: 0 })
    .timeout({ seconds: limits.timeoutSeconds })
    .autoOrient()
    .resize(size, size, { fit: 'inside', withoutEnlargement: true });
  const meta = await sharp(bytes, { limitInputPixels: limits.maxPixels }).metadata();
  const lossless = Math.max(meta.width ?? 0, meta.height ?? 0) <= small;
  const data = await pipeline.webp(lossless ? { lossless: true } : { quality: 80 }).toBuffer();
  return { bytes: data, type: 'image/webp' };
}
