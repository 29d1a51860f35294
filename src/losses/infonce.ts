/**
 * InfoNCE against a queue of negatives, the loss of MoCo.
 *
 * He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020,
 * https://arxiv.org/abs/1911.05722, equation (1), with the MoCo v2 settings (Chen et al. 2020,
 * https://arxiv.org/abs/2003.04297: MLP head, τ = 0.2):
 *
 *   L_q = −log [ exp(q·k₊/τ) / (exp(q·k₊/τ) + Σ_{k⁻ ∈ queue} exp(q·k⁻/τ)) ]
 *
 * i.e. a (K+1)-way softmax cross-entropy whose class 0 is the positive key. Pure: the caller
 * (src/train/moco.ts) owns the queue, stops gradients through the keys and enqueues them afterwards.
 *
 * Shapes: q [N, D] queries, k [N, D] positive keys (row i pairs with row i), queue [K, D];
 * all are L2-normalised here. Returns the mean over the N queries.
 * Errors: RangeError for a bad temperature (value quoted) or mismatched shapes.
 *
 * Usage: infoNce(q, tf.stopGradient?(k), queue, 0.2)
 */
import * as tf from '@tensorflow/tfjs';
import { checkRank, checkTemperature, l2Normalize } from './common';

export function infoNce(q: tf.Tensor2D, k: tf.Tensor2D, queue: tf.Tensor2D | null, temperature = 0.2): tf.Scalar {
  checkTemperature(temperature);
  checkRank(q, 2, 'q', '[N, D]');
  if (q.shape.join() !== k.shape.join()) throw new RangeError(`q [${q.shape.join(', ')}] and k [${k.shape.join(', ')}] must have the same shape`);
  if (queue && (queue.rank !== 2 || queue.shape[1] !== q.shape[1])) {
    throw new RangeError(`queue must be [K, ${q.shape[1]}], got [${queue.shape.join(', ')}]`);
  }
  return tf.tidy(() => {
    const n = q.shape[0];
    const qn = l2Normalize(q); // [N, D]
    const kn = l2Normalize(k); // [N, D]
    const pos = qn.mul(kn).sum(1, true); // [N, 1]: q_i · k_i
    const logits = queue && queue.shape[0] > 0 ? tf.concat([pos, qn.matMul(l2Normalize(queue), false, true)], 1) : pos; // [N, 1 + K]
    const scaled = logits.div(temperature);
    // Cross-entropy with label 0: logsumexp over the row minus the positive logit.
    return scaled.logSumExp(1).sub(scaled.slice([0, 0], [n, 1]).reshape([n])).mean() as tf.Scalar;
  });
}
