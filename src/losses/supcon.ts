/**
 * SupCon, the supervised contrastive loss.
 *
 * Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, https://arxiv.org/abs/2004.11362,
 * equation (2) (L^sup_out, the variant the paper recommends):
 *
 *   L = Σ_{i∈I} −1/|P(i)| Σ_{p∈P(i)} log [ exp(z_i·z_p/τ) / Σ_{a∈A(i)} exp(z_i·z_a/τ) ]
 *
 * with I all V·N views, A(i) = I \ {i}, P(i) the views in A(i) with the same label as i. It is
 * NT-Xent with class labels in place of image ids, so it reuses `contrastiveWithIds`; with all
 * labels distinct it equals NT-Xent exactly. The reference code scales the loss by τ/τ_base
 * (`baseTemperature`, default τ: factor 1). Anchors whose label occurs only once in the batch have
 * no positive (P(i) empty; possible with one view) and are left out of the mean instead of giving
 * NaN; a batch with no positive at all gives 0.
 *
 * Shapes: z [V·N, D] (views stacked view-major: rows v·N + i), labels [N] or [V·N] int32.
 * Errors: RangeError for a bad temperature (value quoted) or label count.
 *
 * Usage: supCon(tf.concat([z1, z2]), labels, 0.1)
 */
import * as tf from '@tensorflow/tfjs';
import { checkTemperature, maskedMean } from './common';
import { contrastiveWithIds } from './ntxent';

export function supCon(z: tf.Tensor2D, labels: tf.Tensor1D, temperature = 0.1, baseTemperature = temperature): tf.Scalar {
  checkTemperature(temperature);
  checkTemperature(baseTemperature, 'baseTemperature');
  const m = z.shape[0];
  const n = labels.shape[0];
  if (n === 0 || m % n !== 0) throw new RangeError(`labels has ${n} entries, which does not divide the ${m} rows of z`);
  return tf.tidy(() => {
    const ids = (n === m ? labels : tf.tile(labels, [m / n])) as tf.Tensor1D; // [V·N]
    const { perAnchor, hasPositive } = contrastiveWithIds(z, ids, temperature);
    return maskedMean(perAnchor, hasPositive).mul(temperature / baseTemperature) as tf.Scalar;
  });
}
