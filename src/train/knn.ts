/**
 * The k-NN monitor of self-supervised training: top-1 of the weighted k-NN classifier (InstDisc
 * protocol, Wu et al. 2018, arXiv:1805.01978, eq. 7; defaults k = 200, T = 0.1), computed by the same
 * code as `likeness eval` (src/eval), so the figure logged during training is the one evaluation reports.
 */
import * as tf from '@tensorflow/tfjs';
import { classCount, knnClassify } from '../eval/knn';
import { exactNeighbours } from '../eval/neighbours';
import { l2Normalize } from '../losses/common';

export interface KnnOptions {
  k?: number;
  temperature?: number;
  /** Largest similarity matrix computed at once (queries · bank entries). Default 4M. */
  maxEntries?: number;
}

/** Unit-length rows of the labelled entries of `features` ([N, D]), as a flat array. */
async function labelledRows(features: tf.Tensor2D, keep: Int32Array): Promise<Float32Array> {
  const t = tf.tidy(() => l2Normalize(features.gather(tf.tensor1d(keep, 'int32')))); // [n, D]
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
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
  const dim = bankFeatures.shape[1];
  if (dim !== queryFeatures.shape[1]) throw new RangeError(`bank dim ${dim} != query dim ${queryFeatures.shape[1]}`);
  const keepBank = Int32Array.from(bankLabels.keys()).filter((i) => bankLabels[i] >= 0);
  const keepQuery = Int32Array.from(queryLabels.keys()).filter((i) => queryLabels[i] >= 0);
  if (keepBank.length === 0 || keepQuery.length === 0) throw new RangeError('k-NN needs labelled bank and query images');
  const numClasses = classCount(bankLabels, queryLabels);
  const k = opts.k ?? 200;
  const table = await exactNeighbours(await labelledRows(bankFeatures, keepBank), await labelledRows(queryFeatures, keepQuery), dim, k, { maxEntries: opts.maxEntries ?? 4_000_000 });
  const report = knnClassify(
    table,
    Array.from(keepBank, (i) => bankLabels[i]),
    Array.from(keepQuery, (i) => queryLabels[i]),
    numClasses,
    { k, temperature: opts.temperature ?? 0.1, vote: 'weighted' },
  );
  return report.top1;
}
