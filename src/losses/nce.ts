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
 * `estimateZ`). Per image this is −log h(positive) − Σ_{j=1}^m log(1 − h(noise_j)), averaged over
 * the batch, as in the authors' NCECriterion.
 *
 * Pure: the caller (src/train/membank.ts) owns the bank, samples the noise indices and updates
 * the bank after the optimizer step, in training only.
 *
 * Shapes: f [N, D] features of the batch (normalised here), positives [N, D] bank entries of the
 * same images, negatives [N, m, D] bank entries drawn at random. n: bank size; z: normaliser Z.
 * Errors: RangeError for a bad temperature (value quoted), Z <= 0 or mismatched shapes.
 */
import * as tf from '@tensorflow/tfjs';
import { checkRank, checkTemperature, l2Normalize } from './common';

const EPS = 1e-7;

/** exp(v_jᵀf_i/τ) for the positive [N, 1] and the noise samples [N, m] (before dividing by Z). */
function bankScores(f: tf.Tensor2D, positives: tf.Tensor2D, negatives: tf.Tensor3D, temperature: number): tf.Tensor2D {
  return tf.tidy(() => {
    const fn = l2Normalize(f); // [N, D]
    const pos = fn.mul(positives).sum(1, true); // [N, 1]
    const neg = tf.matMul(negatives, fn.expandDims(2) as tf.Tensor3D).squeeze([2]); // [N, m, D] @ [N, D, 1] → [N, m]
    return tf.concat([pos, neg], 1).div(temperature).exp() as tf.Tensor2D; // [N, 1 + m]
  });
}

/** Monte-Carlo estimate of Z: n · mean of exp(v_jᵀf_i/τ) over all scores (eq. 5). */
export function estimateZ(f: tf.Tensor2D, positives: tf.Tensor2D, negatives: tf.Tensor3D, n: number, temperature = 0.07): tf.Scalar {
  checkTemperature(temperature);
  return tf.tidy(() => bankScores(f, positives, negatives, temperature).mean().mul(n) as tf.Scalar);
}

export function memoryBankNce(f: tf.Tensor2D, positives: tf.Tensor2D, negatives: tf.Tensor3D, n: number, z: number, temperature = 0.07): tf.Scalar {
  checkTemperature(temperature);
  checkRank(f, 2, 'f', '[N, D]');
  checkRank(negatives, 3, 'negatives', '[N, m, D]');
  if (positives.shape.join() !== f.shape.join()) throw new RangeError(`positives [${positives.shape.join(', ')}] must match f [${f.shape.join(', ')}]`);
  if (negatives.shape[0] !== f.shape[0] || negatives.shape[2] !== f.shape[1]) {
    throw new RangeError(`negatives must be [${f.shape[0]}, m, ${f.shape[1]}], got [${negatives.shape.join(', ')}]`);
  }
  if (!(z > 0) || !Number.isFinite(z)) throw new RangeError(`Z must be a finite number > 0, got ${z}`);
  if (!(n >= 1)) throw new RangeError(`bank size n must be >= 1, got ${n}`);
  return tf.tidy(() => {
    const [batch, m] = [f.shape[0], negatives.shape[1]];
    const p = bankScores(f, positives, negatives, temperature).div(z); // [N, 1 + m]: P(j | v)
    const noise = m / n; // m · P_n(j)
    const pPos = p.slice([0, 0], [batch, 1]); // [N, 1]
    const pNeg = p.slice([0, 1], [batch, m]); // [N, m]
    const logH = pPos.div(pPos.add(noise + EPS)).log(); // [N, 1]: log h(i, v)
    const log1mH = tf.scalar(noise).div(pNeg.add(noise + EPS)).log(); // [N, m]: log(1 − h(j, v′))
    return logH.sum().add(log1mH.sum()).neg().div(batch) as tf.Scalar;
  });
}
