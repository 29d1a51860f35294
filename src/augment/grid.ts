/**
 * A picture of sampled views, to check an augmentation setting by eye: one row per image, the
 * original first and then its views, separated by a pad of `padding` pixels.
 */
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface GridOptions {
  /** Gap between tiles in pixels. Default 2. */
  padding?: number;
  /** Gap colour (0-255 grey). Default 255. */
  background?: number;
}

/**
 * Writes a PNG grid. columns: tensors [N, S, S, C] in [0, 1] with the same N, S and C (e.g. the
 * original followed by each view); row i shows image i of every column.
 */
export async function writeViewGrid(file: string, columns: tf.Tensor4D[], opts: GridOptions = {}): Promise<void> {
  if (columns.length === 0) throw new RangeError('writeViewGrid needs at least one column');
  const [rows, side, , channels] = columns[0].shape;
  for (const c of columns) {
    if (c.shape.join() !== columns[0].shape.join()) throw new RangeError(`grid columns differ in shape: [${c.shape.join(', ')}] vs [${columns[0].shape.join(', ')}]`);
  }
  const pad = opts.padding ?? 2;
  const width = columns.length * side + (columns.length + 1) * pad;
  const height = rows * side + (rows + 1) * pad;
  const out = new Uint8Array(width * height * channels).fill(opts.background ?? 255);
  columns.forEach((col, ci) => {
    const px = tf.tidy(() => col.mul(255).round().clipByValue(0, 255)).dataSync();
    for (let r = 0; r < rows; r++) {
      for (let y = 0; y < side; y++) {
        const src = ((r * side + y) * side) * channels;
        const dst = ((pad + r * (side + pad) + y) * width + pad + ci * (side + pad)) * channels;
        for (let k = 0; k < side * channels; k++) out[dst + k] = px[src + k];
      }
    }
  });
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  // toFile picks the format from the extension (.png, .jpg, .webp ...); PNG when it names none sharp knows.
  const image = sharp(Buffer.from(out.buffer), { raw: { width, height, channels: channels as 1 | 3 } });
  await (/\.(jpe?g|webp|avif|tiff?|png)$/i.test(file) ? image : image.png()).toFile(file);
}
