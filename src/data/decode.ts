/**
 * Image file → raw pixels at the model input size, for training datasets. Follows the manifest's
 * input rules: EXIF rotation applied, alpha flattened onto the background, resized with fit
 * 'contain' on the background (black by default), greyscale when channels = 1.
 */
import sharp from 'sharp';
import { DatasetError } from './dataset';

export interface DecodeSpec {
  size: number;
  channels: 1 | 3;
  fit?: 'contain' | 'cover' | 'fill';
  /** '#rrggbb'. Default black. */
  background?: string;
}

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.bmp']);

export async function decodeFileToPixels(file: string, spec: DecodeSpec): Promise<Uint8Array> {
  const background = spec.background ?? '#000000';
  try {
    let img = sharp(file, { failOn: 'error' })
      .rotate()
      .flatten({ background })
      .resize(spec.size, spec.size, { fit: spec.fit ?? 'contain', background });
    img = spec.channels === 1 ? img.greyscale() : img.toColourspace('srgb');
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    const expected = spec.size * spec.size * spec.channels;
    if (info.channels !== spec.channels || data.length !== expected) {
      throw new DatasetError(`decoded ${info.width}x${info.height}x${info.channels}, expected ${spec.size}x${spec.size}x${spec.channels}`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch (err) {
    throw new DatasetError(`cannot decode image ${file}: ${(err as Error).message}`);
  }
}
