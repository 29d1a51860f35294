/**
 * Image file → raw pixels at the model input size, for training datasets. Delegates to the serving
 * decoder (src/images/decode.ts `decodeToPixels`), so a model is trained on images decoded exactly
 * as it will be served: EXIF rotation, alpha flattened onto the background, fit 'contain' on a black
 * background by default, greyscale when channels = 1.
 */
import * as fs from 'node:fs';
import { DEFAULT_DECODE_LIMITS, decodeToPixels } from '../images/decode';
import { DatasetError } from './dataset';

export interface DecodeSpec {
  size: number;
  channels: 1 | 3;
  fit?: 'contain' | 'cover' | 'fill';
  /** '#rrggbb'. Default black. */
  background?: string;
}

export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif']);

export async function decodeFileToPixels(file: string, spec: DecodeSpec): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new DatasetError(`cannot read image ${file}: ${(err as Error).message}`);
  }
  try {
    const input = { size: spec.size, channels: spec.channels, fit: spec.fit ?? 'contain', background: spec.background ?? '#000000', mean: [0], std: [1] };
    const px = await decodeToPixels(bytes, input, DEFAULT_DECODE_LIMITS);
    return new Uint8Array(px.buffer, px.byteOffset, px.length);
  } catch (err) {
    throw new DatasetError(`cannot decode image ${file}: ${(err as Error).message}`);
  }
}
