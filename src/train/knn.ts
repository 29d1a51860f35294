/**
 * Weighted k-NN classifier on embeddings, the monitor of self-supervised training.
 *
 * Protocol of Wu et al. 2018 (InstDisc, arXiv:1805.01978, §3.4 / eq. 7) as used by solo-learn and
 * lightly: cosine similarity to every bank embedding, the k nearest neighbours vote for their class
 * with weight exp(s/T). Defaults k = 200, T = 0.1. Computed in chunks of queries so the [B, N]
 * similarity matrix stays within `maxEntries`.
 */
import * as tf from '@tensorflow/tfjs';
import { l2Normalize } from '../losses/common';

export interface KnnOptions {
  k?: number;
  temperature?: number;
  /** Largest similarity matrix computed at once (queries · bank entries). Default 4M. */
  maxEntries?: number;
}

/**
 * Predicted classes of one chunk of queries.
 * bank: [N, D] unit rows; bankLabels: [N] int32 in [0, C); queries: [B, D] unit rows → [B] int32.
 */
export function knnPredict(bank: tf.Tensor2D, bankLabels: tf.Tensor1D, queries: tf.Tensor2D, numClasses: number, k = 200, temperature = 0.1): tf.Tensor1D {
  return tf.tidy(() => {
    const kk = Math.min(k, bank.shape[0]);
    const sim = queries.matMul(bank, false, true); // [B, N] cosine similarities
    const { values, indices } = tf.topk(sim, kk); // [B, k] each
    const weights = values.div(temperature).exp(); // [B, k]
    const votes = tf.oneHot(tf.gather(bankLabels, indices.flatten()), numClasses).reshape([queries.shape[0], kk, numClasses]); // [B, k, C]
    return votes.mul(weights.expandDims(2)).sum(1).argMax(1) as tf.Tensor1D; // [B]
  });
}

/**
 * Top-1 accuracy of the weighted k-NN classifier. bankFeatures: [N, D], queryFeatures: [M, D]
 * (normalised here); labels: class indices, entries < 0 (unknown) are skipped on both sides.
 */
export async function knnAccuracy(
  bankFeatures: tf.Tensor2D,
  bankLabels: Int32Array,
  queryFeatures: tf.Tensor2D,
  queryLabels: Int32Array,
  opts: KnnOptions = {},
): Promise<number> {
  if (bankFeatures.shape[0] !== bankLabels.length) throw new RangeError(`${bankLabels.length} bank labels for ${bankFeatures.shape[0]} bank features`);
  if (queryFeatures.shape[0] !== queryLabels.length) throw new RangeError(`${queryLabels.length} query labels for ${queryFeatures.shape[0]} query features`);
  if (bankFeatures.shape[1] !== queryFeatures.shape[1]) throw new RangeError(`bank dim ${bankFeatures.shape[1]} != query dim ${queryFeatures.shape[1]}`);
  const keepBank = Int32Array.from(bankLabels.keys()).filter((i) => bankLabels[i] >= 0);
  const keepQuery = Int32Array.from(queryLabels.keys()).filter((i) => queryLabels[i] >= 0);
  if (keepBank.length === 0 || keepQuery.length === 0) throw new RangeError('k-NN needs labelled bank and query images');
  const numClasses = Math.max(...bankLabels, ...queryLabels) + 1;
  const bank = tf.tidy(() => l2Normalize(bankFeatures.gather(tf.tensor1d(keepBank, 'int32')))); // [N, D]
  const labels = tf.tensor1d(keepBank.map((i) => bankLabels[i]), 'int32'); // [N]
  const chunk = Math.max(1, Math.floor((opts.maxEntries ?? 4_000_000) / bank.shape[0]));
  let correct = 0;
  try {
    for (let s = 0; s < keepQuery.length; s += chunk) {
      const rows = keepQuery.subarray(s, s + chunk);
      const pred = tf.tidy(() => knnPredict(bank, labels, l2Normalize(queryFeatures.gather(tf.tensor1d(rows, 'int32'))), numClasses, opts.k ?? 200, opts.temperature ?? 0.1));
      const p = await pred.data();
      pred.dispose();
      rows.forEach((r, i) => (correct += p[i] === queryLabels[r] ? 1 : 0));
    }
  } finally {
    bank.dispose();
    labels.dispose();
  }
  return correct / keepQuery.length;
}
