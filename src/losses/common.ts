/** Helpers shared by the contrastive losses. All pure and synchronous. */
import * as tf from '@tensorflow/tfjs';

/** Throws a RangeError quoting the value unless temperature is a finite number > 0. */
export function checkTemperature(temperature: number, name = 'temperature'): void {
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new RangeError(`${name} must be a finite number > 0, got ${temperature}`);
}

/** Rows scaled to unit L2 norm: [M, D] → [M, D]. eps guards the all-zero row. */
export function l2Normalize<T extends tf.Tensor>(x: T, axis = -1, eps = 1e-12): T {
  return tf.tidy(() => x.div(x.square().sum(axis, true).add(eps).sqrt()) as T);
}

export function checkRank(x: tf.Tensor, rank: number, name: string, shape: string): void {
  if (x.rank !== rank) throw new RangeError(`${name} must be ${shape}, got shape [${x.shape.join(', ')}]`);
}

/** Mean over the entries where `weight` is 1, 0 when there are none (never NaN). */
export function maskedMean(values: tf.Tensor1D, weight: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => values.mul(weight).sum().div(weight.sum().maximum(1)) as tf.Scalar);
}

/**
 * Identity in the forward pass, zero gradient in the backward pass (tfjs has no stop_gradient op).
 * Used for targets such as SwAV's codes and MoCo's keys.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    return { value: input.clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) };
  });
  return f(x) as T;
}
