/**
 * SwAV: swapped prediction of online cluster assignments.
 *
 * Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments",
 * NeurIPS 2020, https://arxiv.org/abs/2006.09882.
 *
 * Scores against K prototypes c_k: s = z Cᵀ (z and c unit length). Codes Q come from the
 * Sinkhorn-Knopp algorithm (eq. 3 and its solution Q* = Diag(u) exp(CᵀZ/ε) Diag(v)), which
 * spreads the B samples equally over the K prototypes; they are targets, so no gradient flows
 * through them. The swapped prediction problem (eq. 1-2):
 *
 *   L(z_t, z_s) = ℓ(z_t, q_s) + ℓ(z_s, q_t),   ℓ(z_t, q_s) = −Σ_k q_s^(k) log p_t^(k),
 *   p_t^(k) = exp(z_tᵀc_k/τ) / Σ_k′ exp(z_tᵀc_k′/τ)
 *
 * averaged, as in the reference code, over every ordered pair (code view s, predicting view t ≠ s)
 * and over the batch. Defaults: ε = 0.05, 3 Sinkhorn iterations, τ = 0.1.
 *
 * Shapes: scores[v] [B, K] (z_v Cᵀ for view v). Errors: RangeError for a bad temperature or ε
 * (value quoted), fewer than 2 views, or mismatched shapes.
 */
import * as tf from '@tensorflow/tfjs';
import { checkRank, checkTemperature, stopGradient } from './common';

/**
 * Sinkhorn-Knopp equipartition. scores: [B, K] → codes Q [B, K], each row a distribution over
 * prototypes, columns summing to ≈ B/K of the mass. The same iterations as the reference
 * `distributed_sinkhorn`, carried out on log Q: exp(score/ε) underflows to 0 for a prototype far from
 * every sample when ε is small, and the plain form then divides 0 by 0.
 */
export function sinkhorn(scores: tf.Tensor2D, epsilon = 0.05, iterations = 3): tf.Tensor2D {
  checkTemperature(epsilon, 'epsilon');
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError(`iterations must be an integer >= 1, got ${iterations}`);
  checkRank(scores, 2, 'scores', '[B, K]');
  return tf.tidy(() => {
    const [b, k] = scores.shape;
    let logQ = scores.div(epsilon).transpose() as tf.Tensor2D; // [K, B]
    for (let it = 0; it < iterations; it++) {
      logQ = logQ.sub(tf.logSumExp(logQ, 1, true)).sub(Math.log(k)); // rows (prototypes) sum to 1/K
      logQ = logQ.sub(tf.logSumExp(logQ, 0, true)).sub(Math.log(b)); // columns (samples) sum to 1/B
    }
    return logQ.add(Math.log(b)).exp().transpose() as tf.Tensor2D; // [B, K], rows sum to 1
  });
}

export interface SwavOptions {
  /** Softmax temperature τ of the predictions. Default 0.1. */
  temperature?: number;
  /** Entropic regularisation ε of Sinkhorn-Knopp. Default 0.05. */
  epsilon?: number;
  /** Sinkhorn-Knopp iterations. Default 3. */
  iterations?: number;
  /** Views whose codes serve as targets (SwAV computes codes only for the large crops). Default: all. */
  codeViews?: number[];
}

/**
 * SwAV loss. scores: one [B, K] tensor per view (z_v Cᵀ). Codes use stopGradient semantics: they are
 * computed from the scores' values but do not propagate gradient.
 */
export function swavLoss(scores: tf.Tensor2D[], opts: SwavOptions = {}): tf.Scalar {
  const temperature = opts.temperature ?? 0.1;
  checkTemperature(temperature);
  if (scores.length < 2) throw new RangeError(`SwAV needs at least 2 views, got ${scores.length}`);
  for (const s of scores) {
    checkRank(s, 2, 'scores', '[B, K]');
    if (s.shape.join() !== scores[0].shape.join()) throw new RangeError(`view scores differ in shape: [${s.shape.join(', ')}] vs [${scores[0].shape.join(', ')}]`);
  }
  const codeViews = opts.codeViews ?? scores.map((_, i) => i);
  return tf.tidy(() => {
    let total: tf.Tensor = tf.scalar(0);
    let terms = 0;
    for (const s of codeViews) {
      const q = sinkhorn(stopGradient(scores[s]), opts.epsilon, opts.iterations); // [B, K] targets, no gradient
      scores.forEach((t, v) => {
        if (v === s) return;
        const logP = tf.logSoftmax(t.div(temperature)); // [B, K]
        total = total.add(q.mul(logP).sum(1).mean().neg()); // ℓ(z_v, q_s), mean over the batch
        terms++;
      });
    }
    return total.div(terms) as tf.Scalar;
  });
}
