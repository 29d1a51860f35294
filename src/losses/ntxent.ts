/**
 * NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR.
 *
 * Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual
 * Representations", ICML 2020, https://arxiv.org/abs/2002.05709, equation (1):
 *
 *   ℓ(i, j) = −log [ exp(sim(z_i, z_j)/τ) / Σ_{k=1}^{2N} 1[k≠i] exp(sim(z_i, z_k)/τ) ]
 *
 * with sim the cosine similarity; the loss is the mean over all 2N anchors, each contrasted with
 * its positive and the 2N − 2 other views in the batch. (lightly's NTXentLoss with memory bank 0.)
 *
 * Positives come from an id vector, as in solo-learn: rows with equal ids are positives of each
 * other. Image ids give SimCLR; class labels give SupCon's L^sup_out (supcon.ts reuses
 * `contrastiveWithIds`). When an anchor has several positives, its loss is the mean of −log p over
 * them (Khosla et al. 2020, eq. 2); an anchor without any positive contributes nothing, and a batch
 * without any positive gives 0, never NaN.
 *
 * Errors: RangeError for temperature <= 0 / not finite (the value is quoted), for shapes that do
 * not pair up.
 *
 * Usage:
 *   const loss = ntXentPair(z1, z2, 0.5);          // z1, z2: [N, D] projections of two views
 *   const loss = ntXent(z, ids, 0.5);              // z: [M, D], ids: [M] int32
 */
import * as tf from '@tensorflow/tfjs';
import { checkRank, checkTemperature, l2Normalize, maskedMean } from './common';

/**
 * Core of NT-Xent / SupCon on M rows. z: [M, D] (normalised here), ids: [M] int32.
 * Returns the per-anchor losses [M] and which anchors have a positive [M] (1/0).
 */
export function contrastiveWithIds(z: tf.Tensor2D, ids: tf.Tensor1D, temperature: number): { perAnchor: tf.Tensor1D; hasPositive: tf.Tensor1D } {
  checkTemperature(temperature);
  checkRank(z, 2, 'z', '[M, D]');
  checkRank(ids, 1, 'ids', '[M]');
  if (ids.shape[0] !== z.shape[0]) throw new RangeError(`ids has ${ids.shape[0]} entries for ${z.shape[0]} rows of z`);
  return tf.tidy(() => {
    const m = z.shape[0];
    const zn = l2Normalize(z); // [M, D]
    const self = tf.eye(m); // [M, M]
    const logits = zn.matMul(zn, false, true).div(temperature); // [M, M]: s_ik / τ
    // Drop k = i from the denominator by pushing it far below every other logit.
    const masked = logits.sub(self.mul(1e9)); // [M, M]
    const logProb = masked.sub(masked.logSumExp(1, true)); // [M, M]: log p(k | i) over k ≠ i
    const same = ids.expandDims(1).equal(ids.expandDims(0)).toFloat(); // [M, M]: ids_i == ids_k
    const positives = same.sub(self); // [M, M]: positives of i, excluding i itself
    const count = positives.sum(1); // [M]
    const hasPositive = count.greater(0).toFloat() as tf.Tensor1D; // [M]
    // −mean_{p ∈ P(i)} log p(p | i); where P(i) is empty, 0 (masked out of the mean later).
    const perAnchor = positives.mul(logProb).sum(1).neg().div(count.maximum(1)) as tf.Tensor1D; // [M]
    return { perAnchor, hasPositive };
  });
}

/**
 * NT-Xent over M = V·N rows whose positives are given by `ids`. z: [M, D], ids: [M] int32.
 * Returns the mean over anchors that have at least one positive.
 */
export function ntXent(z: tf.Tensor2D, ids: tf.Tensor1D, temperature = 0.5): tf.Scalar {
  return tf.tidy(() => {
    const { perAnchor, hasPositive } = contrastiveWithIds(z, ids, temperature);
    return maskedMean(perAnchor, hasPositive);
  });
}

/** Ids [0..N-1] repeated once per view: [V·N] int32, the positives of SimCLR. */
export function viewIds(n: number, views = 2): tf.Tensor1D {
  return tf.tidy(() => tf.tile(tf.range(0, n, 1, 'int32'), [views]) as tf.Tensor1D);
}

/**
 * NT-Xent for two views, SimCLR's form. z1, z2: [N, D]; row i of each is a view of image i.
 * Each of the 2N anchors has one positive and 2N − 2 negatives.
 */
export function ntXentPair(z1: tf.Tensor2D, z2: tf.Tensor2D, temperature = 0.5): tf.Scalar {
  checkRank(z1, 2, 'z1', '[N, D]');
  if (z1.shape.join() !== z2.shape.join()) throw new RangeError(`z1 [${z1.shape.join(', ')}] and z2 [${z2.shape.join(', ')}] must have the same shape`);
  return tf.tidy(() => ntXent(tf.concat([z1, z2]) as tf.Tensor2D, viewIds(z1.shape[0], 2), temperature));
}
