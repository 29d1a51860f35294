/**
 * Batch normalization (Ioffe & Szegedy 2015, arXiv:1502.03167) trained with two ops that carry
 * hand-written gradients.
 *
 * tfjs-layers trains batch norm as tf.moments + tf.batchNorm and lets autodiff walk back through the
 * moments: about twenty full-size passes over the activation per layer (Sub, Square, Mean, the Mean
 * gradient's broadcast of a ones tensor, Square's and Sub's gradients, the contributions to dx added
 * up), and on wasm its FusedBatchNorm kernel is a scalar loop. Here the moments and the normalization
 * are one op each (paper, §3: the gradient of each in closed form), and every full-size pass is a
 * per-channel scale-and-shift that XNNPACK runs as a 1x1 depthwise convolution, or a product or sum:
 * 5 passes forward, 6 backward. On wasm a layer's training pass is 2-3.4x faster than the stock
 * layer's (bench/batch-norm, docs/BENCHMARKS.md).
 *
 * A backend may do better with one fused op: where it registers the kernels BATCH_NORM_TRAIN and
 * BATCH_NORM_TRAIN_GRAD (on wasm with the oneDNN addon: src/runtime/kernels/onednn-batch-norm.ts), a
 * layer's training pass is one kernel each way, two passes over the activation instead of five and six.
 *
 * Inference is the same single scale-and-shift pass with the moving statistics (the stock layer's
 * FusedBatchNorm is ~3x slower on wasm). The subclass keeps the className 'BatchNormalization', its
 * config and weights, so saved models are plain tfjs models; registering it (model-dir.ts imports
 * this module) makes tf.loadLayersModel build this class too. Other axes and layers without scale or
 * centre run the stock code.
 */
import * as tf from '@tensorflow/tfjs';

type LayerArgs = Parameters<typeof tf.layers.batchNormalization>[0];

/** The stock layer class (tfjs does not export it by name). */
const StockBatchNormalization = tf.layers.batchNormalization({}).constructor as new (args?: LayerArgs) => tf.layers.Layer & {
  momentum: number;
  epsilon: number;
  axis: number;
  scale: boolean;
  center: boolean;
  gamma: tf.LayerVariable;
  beta: tf.LayerVariable;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
};

/** Axes of all but the last dimension, and how many values each channel has over them. */
function channelReduction(x: tf.Tensor): { axes: number[]; count: number } {
  return { axes: x.shape.slice(0, -1).map((_, i) => i), count: x.size / x.shape[x.rank - 1] };
}

/**
 * Batch mean μ and biased variance σ² over all axes but the last, packed as [2, C]; differentiable
 * in x: ∂μ/∂x = 1/M and ∂σ²/∂x = 2·(x − μ)/M (σ²'s dependence on μ sums to zero), so the gradient is
 * one scale-and-shift pass over x.
 */
export function batchMoments(x: tf.Tensor): tf.Tensor2D {
  const { axes, count } = channelReduction(x);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const input = args[0] as tf.Tensor;
    const save = args[1] as tf.GradSaveFunc;
    const mean = tf.mean(input, axes) as tf.Tensor1D;
    const variance = tf.mean(tf.square(channelAffine(input, tf.onesLike(mean), tf.neg(mean))), axes) as tf.Tensor1D;
    const moments = tf.stack([mean, variance]);
    // Only inputs and outputs are saved: tfjs counts any other tensor a kernel keeps as a leak.
    save([input, moments]);
    return {
      value: moments,
      gradFunc: (dMoments: tf.Tensor, saved: tf.Tensor[]) => {
        const [xin, stats] = saved;
        const [dMean, dVariance] = tf.unstack(dMoments);
        // dμ/M + (2dσ²/M)·(x − μ), as one pass over x
        const scale = tf.mul(dVariance, 2 / count);
        return [channelAffine(xin, scale, tf.sub(tf.div(dMean, count), tf.mul(scale, tf.unstack(stats)[0])))];
      },
    };
  });
  return op(x) as tf.Tensor2D;
}

/**
 * y = γ·(x − μ)·r + β with r = 1/√(σ² + ε), μ and σ² given as [2, C] (batchMoments); differentiable
 * in x, the moments, γ and β, each with its partial derivative (autodiff adds the moments' share of
 * dx through batchMoments):
 *   ∂/∂x = γr·dy   ∂/∂μ = −γr·Σdy   ∂/∂σ² = −½·γr³·Σdy·(x − μ)   ∂/∂γ = r·Σdy·(x − μ)   ∂/∂β = Σdy
 * Forward: one pass, y = γr·x + (β − γrμ). Backward: Σdy, Σdy·x and one pass for dx.
 */
export function normalizeWithMoments(x: tf.Tensor, moments: tf.Tensor2D, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): tf.Tensor {
  const { axes } = channelReduction(x);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, stats, g, b] = args as tf.Tensor[];
    const save = args[4] as tf.GradSaveFunc;
    const [mean, variance] = tf.unstack(stats);
    const r = tf.rsqrt(tf.add(variance, epsilon));
    const gr = tf.mul(g, r);
    save([input, stats, g]);
    return {
      value: channelAffine(input, gr, tf.sub(b, tf.mul(gr, mean))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xin, moments, gam] = saved;
        const [mu, sigma2] = tf.unstack(moments);
        const rs = tf.rsqrt(tf.add(sigma2, epsilon));
        const sumDy = tf.sum(dy, axes);
        // Σdy·(x − μ) = Σdy·x − μ·Σdy: saves a pass; the cancellation costs ~|μ|/σ ulps, harmless
        // for activations, which batch norm keeps near zero mean
        const sumDyXc = tf.sub(tf.sum(tf.mul(dy, xin), axes), tf.mul(mu, sumDy));
        const gRs = tf.mul(gam, rs);
        const dMean = tf.neg(tf.mul(gRs, sumDy));
        const dVariance = tf.mul(tf.mul(gRs, tf.square(rs)), tf.mul(sumDyXc, -0.5));
        return [channelAffine(dy, gRs), tf.stack([dMean, dVariance]), tf.mul(rs, sumDyXc), sumDy];
      },
    };
  });
  return op(x, moments, gamma, beta) as tf.Tensor;
}

/**
 * x·scale + shift per channel (last axis) as a 1x1 depthwise convolution with bias: one pass over x.
 * On wasm that is one XNNPACK kernel, 2-3x faster than a broadcast multiply and add, and several times
 * faster than the FusedBatchNorm kernel (a scalar loop there).
 */
export function channelAffine(x: tf.Tensor, scale: tf.Tensor, shift?: tf.Tensor): tf.Tensor {
  const c = x.shape[x.rank - 1];
  // rank 4 stays NHWC so XNNPACK can split the work by image; anything else becomes [rows, 1, 1, C]
  const x4 = (x.rank === 4 ? x : tf.reshape(x, [x.size / c, 1, 1, c])) as tf.Tensor4D;
  const y = tf.fused.depthwiseConv2d({ x: x4, filter: tf.reshape(scale, [1, 1, c, 1]) as tf.Tensor4D, strides: 1, pad: 'valid', bias: shift });
  return x.rank === 4 ? y : tf.reshape(y, x.shape);
}

/**
 * A fused training pass a backend may provide. BATCH_NORM_TRAIN: inputs {x, gamma, beta}, attrs
 * {epsilon}; outputs [y, moments] with y = γ·(x − μ)/√(σ² + ε) + β over all axes but the last and
 * moments = [μ; σ²] (biased), [2, C]. BATCH_NORM_TRAIN_GRAD: inputs {dy, x, gamma, moments}, attrs
 * {epsilon}; outputs [dx, dγ, dβ], dx including the moments' dependence on x (the paper's §3).
 */
export const BATCH_NORM_TRAIN = 'LikenessBatchNormTrain';
export const BATCH_NORM_TRAIN_GRAD = 'LikenessBatchNormTrainGrad';

/**
 * Whether the fused training op runs here: the current backend has its kernel, x is a non-empty
 * float32, ε a float32 in (0, 1] (the addon's range; tfjs-layers accepts any, e.g. 0 from a Keras config).
 */
export function hasFusedBatchNorm(x: tf.Tensor, epsilon: number): boolean {
  const eps = Math.fround(epsilon);
  return x.dtype === 'float32' && x.size > 0 && eps > 0 && eps <= 1 && tf.getKernel(BATCH_NORM_TRAIN, tf.getBackend()) !== undefined;
}

/**
 * The fused op: [y, moments]. Only y carries a gradient: the layer feeds moments to its moving
 * averages alone, which the loss does not depend on, so their gradient (zeros) is not taken. Not for a
 * loss that uses the moments (batchMoments differentiates them).
 */
function fusedBatchNormTrain(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, epsilon: number): [tf.Tensor, tf.Tensor2D] {
  const [y, moments] = tf.engine().runKernel(BATCH_NORM_TRAIN, { x, gamma, beta }, { epsilon }) as tf.Tensor[];
  return [y, moments as tf.Tensor2D];
}

tf.registerGradient({
  kernelName: BATCH_NORM_TRAIN,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = (dys as tf.Tensor[])[0];
    const [x, gamma, moments] = saved;
    const [dx, dGamma, dBeta] = tf.engine().runKernel(BATCH_NORM_TRAIN_GRAD, { dy, x, gamma, moments }, attrs) as tf.Tensor[];
    return { x: () => dx, gamma: () => dGamma, beta: () => dBeta };
  },
});

/**
 * tf.layers.batchNormalization whose training pass is one fused op where the backend has it, else
 * batchMoments + normalizeWithMoments.
 */
export class BatchNormalization extends StockBatchNormalization {
  static className = 'BatchNormalization';

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor | tf.Tensor[] {
    const input = Array.isArray(inputs) ? inputs[0] : inputs;
    const lastAxis = this.axis === -1 || this.axis === input.rank - 1;
    if (!lastAxis || !this.scale || !this.center) return super.call(inputs, kwargs);
    if (!kwargs['training']) {
      // inference: y = γr·x + (β − γrμ) with the moving statistics, one pass
      return tf.tidy(() => {
        const gr = tf.mul(this.gamma.read(), tf.rsqrt(tf.add(this.movingVariance.read(), this.epsilon)));
        return channelAffine(input, gr, tf.sub(this.beta.read(), tf.mul(gr, this.movingMean.read())));
      });
    }
    return tf.tidy(() => {
      const gamma = this.gamma.read() as tf.Tensor1D;
      const beta = this.beta.read() as tf.Tensor1D;
      let y: tf.Tensor | undefined;
      let moments: tf.Tensor2D;
      if (hasFusedBatchNorm(input, this.epsilon)) [y, moments] = fusedBatchNormTrain(input, gamma, beta, this.epsilon);
      else moments = batchMoments(input);
      // Moving averages as the stock layer keeps them: v ← v − (1 − momentum)·(v − batch value)
      const [mean, variance] = tf.unstack(moments);
      for (const [variable, value] of [
        [this.movingMean, mean],
        [this.movingVariance, variance],
      ] as const) {
        variable.write(tf.sub(variable.read(), tf.mul(tf.sub(variable.read(), value), 1 - this.momentum)));
      }
      return y ?? normalizeWithMoments(input, moments, gamma, beta, this.epsilon);
    });
  }
}

tf.serialization.registerClass(BatchNormalization as unknown as tf.serialization.SerializableConstructor<tf.layers.Layer>);

/** Builds the layer; use in place of tf.layers.batchNormalization. */
export function batchNormalization(args: LayerArgs): BatchNormalization {
  return new BatchNormalization(args);
}
