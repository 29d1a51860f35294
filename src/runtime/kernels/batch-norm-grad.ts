/**
 * Leaner gradients for FusedBatchNorm and Mean, used while the wasm backend is active.
 *
 * tfjs-core's FusedBatchNorm gradient tiles 1/σ to the full activation shape (Tile is a scalar loop
 * on wasm) and makes ~12 full-size passes; Mean's gradient multiplies by a materialised ones tensor
 * and divides in a third pass. Gradients are global in tfjs, so each override delegates to the stock
 * gradient on other backends: the cpu backend stays the untouched reference.
 *
 * Batch norm y = (x − μ)·γ·r + β with r = 1/√(σ² + ε), reduced over axes A (everything but channels):
 *   dx = dy·γ·r          dμ = −γ·r·Σ_A dy          dσ² = −½·γ·r³·Σ_A dy·(x − μ)
 *   dγ = r·Σ_A dy·(x − μ)                          dβ = Σ_A dy
 * so two per-channel reductions (computed once, kept small) and one broadcast multiply suffice.
 */
import * as tf from '@tensorflow/tfjs';

type GradFunc = tf.GradConfig['gradFunc'];

/** Wraps `fast` so it runs on wasm only; elsewhere the stock gradient runs. */
function onWasmOnly(stock: tf.GradConfig | undefined, fast: GradFunc): GradFunc {
  return (dy, saved, attrs) => {
    if (tf.getBackend() !== 'wasm' && stock) return stock.gradFunc(dy, saved, attrs);
    return fast(dy, saved, attrs);
  };
}

function fusedBatchNormGrad(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap): Record<string, () => tf.Tensor> {
  const grad = dy as tf.Tensor;
  const [x, mean, variance, scale] = saved;
  const epsilon = (attrs as unknown as tf.FusedBatchNormAttrs).varianceEpsilon;
  const axes = tf.backend_util.getReductionAxes(mean.shape, x.shape);
  // Per-channel statistics only (shape of mean, e.g. [C]); full-size temporaries die in the tidy.
  const [rsigma, sumDy, sumDyXc] = tf.tidy(() => {
    const r = tf.rsqrt(tf.add(variance, tf.scalar(epsilon)));
    // Σ_A dy and Σ_A dy·(x − μ), reshaped like μ
    const sDy = tf.reshape(tf.sum(grad, axes), mean.shape);
    const sDyXc = tf.reshape(tf.sum(tf.mul(grad, tf.sub(x, mean)), axes), mean.shape);
    return [r, sDy, sDyXc];
  });
  const gamma = (): tf.Tensor => (scale == null ? tf.scalar(1) : scale);
  return {
    // [N, H, W, C]: one broadcast multiply by γ·r
    x: () => tf.mul(grad, tf.mul(gamma(), rsigma)),
    mean: () => tf.neg(tf.mul(tf.mul(gamma(), rsigma), sumDy)),
    variance: () => tf.mul(tf.mul(tf.mul(gamma(), tf.pow(rsigma, 3)), sumDyXc), tf.scalar(-0.5)),
    scale: () => tf.mul(rsigma, sumDyXc),
    offset: () => tf.clone(sumDy),
  };
}

function meanGrad(dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], attrs: tf.NamedAttrMap): Record<string, () => tf.Tensor> {
  const [x] = saved;
  const axes = tf.util.parseAxisParam((attrs as unknown as tf.MeanAttrs).axis, x.shape);
  const reduceSize = axes.reduce((n, a) => n * x.shape[a], 1);
  return {
    x: () => {
      const expanded = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
      // dx = broadcast(dy / n): scale the small tensor, then one broadcast multiply
      return tf.mul(tf.reshape(tf.div(dy as tf.Tensor, reduceSize), expanded), tf.ones(x.shape));
    },
  };
}

/** Gradient overrides keyed by kernel name, built around the stock configs they fall back to. */
export function leanGradientConfigs(): tf.GradConfig[] {
  const stockBn = tf.getGradient(tf.FusedBatchNorm);
  const stockMean = tf.getGradient(tf.Mean);
  return [
    { kernelName: tf.FusedBatchNorm, inputsToSave: ['x', 'mean', 'variance', 'scale'], gradFunc: onWasmOnly(stockBn, fusedBatchNormGrad) },
    { kernelName: tf.Mean, inputsToSave: ['x'], gradFunc: onWasmOnly(stockMean, meanGrad) },
  ];
}
