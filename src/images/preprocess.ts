/**
 * The one place where pixels become model input. Serving, training and evaluation all call
 * `pixelsToTensor`, so a model never sees images prepared differently from the way it was trained.
 */
import * as tf from '@tensorflow/tfjs';
import type { InputSpec } from '../model/manifest';

/**
 * Raw pixels → normalised model input.
 * pixels: N images of size x size x channels bytes, row-major, channels last (as `decodeToPixels` and
 * the IDX reader produce). Returns [N, size, size, channels] float32: (pixel / 255 - mean[c]) / std[c].
 */
export function pixelsToTensor(pixels: Uint8Array, count: number, spec: Pick<InputSpec, 'size' | 'channels' | 'mean' | 'std'>): tf.Tensor4D {
  const { size, channels, mean, std } = spec;
  const expected = count * size * size * channels;
  if (pixels.length !== expected) {
    throw new RangeError(`expected ${expected} bytes for ${count} image(s) of ${size}x${size}x${channels}, got ${pixels.length}`);
  }
  return tf.tidy(() => {
    const x = tf.tensor4d(pixels, [count, size, size, channels], 'int32').toFloat().div(255); // [N, S, S, C] in [0, 1]
    return x.sub(tf.tensor1d(mean)).div(tf.tensor1d(std)) as tf.Tensor4D; // broadcast over the channel axis
  });
}
