/**
 * Linear probe: multinomial logistic regression on frozen embeddings, the standard second measure
 * of representation quality (e.g. SimCLR, arXiv:2002.05709 §B.6). Features are standardised with the
 * training split's mean and std; full-batch Adam with L2 weight decay.
 */
import * as tf from '@tensorflow/tfjs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

export interface ProbeConfig {
  epochs: number;
  learningRate: number;
  weightDecay: number;
}

export const DEFAULT_PROBE: ProbeConfig = { epochs: 300, learningRate: 0.05, weightDecay: 1e-4 };

/** train/test: [N * dim] features; labels in 0..numClasses-1. Returns test accuracy. */
export async function linearProbe(
  train: Float32Array,
  trainLabels: ArrayLike<number>,
  test: Float32Array,
  testLabels: ArrayLike<number>,
  dim: number,
  numClasses: number,
  cfg: ProbeConfig = DEFAULT_PROBE,
): Promise<number> {
  const n = train.length / dim;
  const m = test.length / dim;
  if (trainLabels.length !== n || testLabels.length !== m) throw new RangeError(`labels (${trainLabels.length}, ${testLabels.length}) do not match features (${n}, ${m})`);
  const [xTrain, xTest, yTrain] = tf.tidy(() => {
    const xtr = tf.tensor2d(train, [n, dim]);
    const { mean, variance } = tf.moments(xtr, 0); // [D] each
    const std = variance.sqrt().add(1e-6);
    return [xtr.sub(mean).div(std), tf.tensor2d(test, [m, dim]).sub(mean).div(std), tf.oneHot(tf.tensor1d(Array.from(trainLabels), 'int32'), numClasses)];
  });
  const w = tf.variable(tf.zeros([dim, numClasses]));
  const b = tf.variable(tf.zeros([numClasses]));
  const opt = tf.train.adam(cfg.learningRate);
  try {
    for (let e = 0; e < cfg.epochs; e++) {
      const loss = opt.minimize(() => {
        const logits = xTrain.matMul(w).add(b); // [N, C]
        return tf.losses.softmaxCrossEntropy(yTrain, logits).add(w.square().sum().mul(cfg.weightDecay)) as tf.Scalar;
      }, true);
      loss?.dispose();
      if (e % 20 === 19) await yieldToEventLoop();
    }
    const pred = tf.tidy(() => xTest.matMul(w).add(b).argMax(1));
    const p = await pred.data();
    pred.dispose();
    let correct = 0;
    for (let i = 0; i < m; i++) if (p[i] === testLabels[i]) correct++;
    return correct / m;
  } finally {
    tf.dispose([xTrain, xTest, yTrain, w, b]);
    opt.dispose();
  }
}
