/**
 * Noise-contrastive estimation against a memory bank (instance discrimination).
 *
 * Wu, Xiong, Yu, Lin, "Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
 * CVPR 2018, https://arxiv.org/abs/1805.01978. The non-parametric softmax of eq. (2),
 * P(i|v) = exp(v_iᵀv/τ) / Z_i, is approximated by NCE (eqs. 3-4) with m noise samples drawn from the
 * uniform P_n = 1/n over the n bank entries:
 *
 *   h(i, v) = P(i|v) / (P(i|v) + m·P_n(i))
 *   J_NCE = −E_{P_d}[log h(i, v)] − m·E_{P_n}[log(1 − h(i, v′))]
 *
 * and Z_i ≈ Z is a constant estimated once by Monte Carlo (eq. 5, Z ≈ n·E_j[exp(v_jᵀf_i/τ)]; see
 * `estimateLogZ`). Per image this is −log h(positive) − Σ_{j=1}^m log(1 − h(noise_j)), averaged over
 * the batch, as in the authors' NCECriterion.
 *
 * Pure: the caller (src/train/membank.ts) owns the bank, samples the noise indices and updates
 * the bank after the optimizer step, in training only.
 *
 * Shapes: f [N, D] features of the batch (normalised here), positives [N, D] bank entries of the
 * same images, negatives [N, m, D] bank entries drawn at random. n: bank size; logZ: log of the normaliser Z.
 * Errors: RangeError for a bad temperature (value quoted), Z <= 0 or mismatched shapes.
 */
import * as tf from '@tensorflow/tfjs';
import { checkRank, checkTemperature, l2Normalize } from './common';

/** v_jᵀf_i/τ for the positive [N, 1] and the noise samples [N, m]: log of the unnormalised P(j|v). */
function bankLogits(f: tf.Tensor2D, positives: tf.Tensor2D, negatives: tf.Tensor3D, temperature: number): tf.Tensor2D {
  return tf.tidy(() => {
    const fn = l2Normalize(f); // [N, D]
    const pos = fn.mul(positives).sum(1, true); // [N, 1]
    const neg = tf.matMul(negatives, fn.expandDims(2) as tf.Tensor3D).squeeze([2]); // [N, m, D] @ [N, D, 1] → [N, m]
    return tf.concat([pos, neg], 1).div(temperature) as tf.Tensor2D; // [N, 1 + m]
  });
}

/**
 * Monte-Carlo estimate of log Z: log(n · mean of exp(v_jᵀf_i/τ)) over all scores (eq. 5). Kept in logs:
 * exp(1/τ) overflows float32 below τ ≈ 0.0113.
 */
export function estimateLogZ(f: tf.Tensor2D, positives: tf.Tensor2D, negatives: tf.Tensor3D, n: number, temperature = 0.07): tf.Scalar {
  checkTemperature(temperature);
  return tf.tidy(() => {
    const logits = bankLogits(f, positives, negatives, temperature);
    return tf.logSumExp(logits).add(Math.log(n / logits.size)) as tf.Scalar;
  });
}

/** logZ: the log of the normaliser Z (see `estimateLogZ`). */
export function memoryBankNce(f: tf.Tensor2D, positives: tf.Tensor2D, negatives: tf.Tensor3D, n: number, logZ: number, temperature = 0.07): tf.Scalar {
  checkTemperature(temperature);
  checkRank(f, 2, 'f', '[N, D]');
  checkRank(negatives, 3, 'negatives', '[N, m, D]');
  if (positives.shape.join() !== f.shape.join()) throw new RangeError(`positives [${positives.shape.join(', ')}] must match f [${f.shape.join(', ')}]`);
  if (negatives.shape[0] !== f.shape[0] || negatives.shape[2] !== f.shape[1]) {
    throw new RangeError(`negatives must be [${f.shape[0]}, m, ${f.shape[1]}], got [${negatives.shape.join(', ')}]`);
  }
  if (!Number.isFinite(logZ)) throw new RangeError(`log Z must be a finite number, got ${logZ}`);
  if (!(n >= 1)) throw new RangeError(`bank size n must be >= 1, got ${n}`);
  return tf.tidy(() => {
    const [batch, m] = [f.shape[0], negatives.shape[1]];
    // With log P = s/τ − log Z and the noise mass m·P_n = m/n, h = P / (P + m/n) gives
    // log h = −softplus(log(m/n) − log P) and log(1 − h) = −softplus(log P − log(m/n)):
    // finite for any τ, where exp(s/τ) itself would overflow.
    const logP = bankLogits(f, positives, negatives, temperature).sub(logZ); // [N, 1 + m]
    const logNoise = Math.log(m / n);
    const logH = tf.softplus(logP.slice([0, 0], [batch, 1]).neg().add(logNoise)).neg(); // [N, 1]: log h(i, v)
    const log1mH = tf.softplus(logP.slice([0, 1], [batch, m]).sub(logNoise)).neg(); // [N, m]: log(1 − h(j, v′))
    return logH.sum().add(log1mH.sum()).neg().div(batch) as tf.Scalar;
  });
}
