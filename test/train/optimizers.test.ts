import * as tf from '@tensorflow/tfjs';
import { createOptimizer } from '../../src/train/optimizers';
import { learningRate } from '../../src/train/schedule';
import { knnAccuracy } from '../../src/train/knn';
import { useCpu } from './helpers';

beforeAll(useCpu);

describe('optimizers', () => {
  it('SGD with momentum follows the hand-worked update', () => {
    const w = tf.variable(tf.tensor2d([[1, 2]]));
    const opt = createOptimizer('sgd', { momentum: 0.5, weightDecay: 0 });
    opt.apply([w], { [w.name]: tf.tensor2d([[1, 1]]) }, 0.1); // b = g = 1 → w − 0.1
    opt.apply([w], { [w.name]: tf.tensor2d([[1, 1]]) }, 0.1); // b = 0.5 + 1 = 1.5 → w − 0.15
    expect(Array.from(w.dataSync())).toEqual([expect.closeTo(0.75, 6), expect.closeTo(1.75, 6)]);
  });

  it('AdamW takes a first step of size lr, and decays only rank > 1 variables', () => {
    const w = tf.variable(tf.tensor2d([[1, -1]]));
    const b = tf.variable(tf.tensor1d([1]));
    const opt = createOptimizer('adam', { weightDecay: 0.1 });
    opt.apply([w, b], { [w.name]: tf.tensor2d([[3, -0.5]]), [b.name]: tf.tensor1d([2]) }, 0.01);
    // bias-corrected m/√v = sign(g): w − 0.01·sign(g) − 0.01·0.1·w
    expect(w.dataSync()[0]).toBeCloseTo(1 - 0.01 - 0.001, 5);
    expect(w.dataSync()[1]).toBeCloseTo(-1 + 0.01 + 0.001, 5);
    expect(b.dataSync()[0]).toBeCloseTo(1 - 0.01, 5);
  });

  it('LARS scales the step by η‖w‖/‖g‖', () => {
    const w = tf.variable(tf.tensor2d([[3, 4]])); // ‖w‖ = 5
    const opt = createOptimizer('lars', { weightDecay: 0, trustCoefficient: 0.001, momentum: 0.9 });
    opt.apply([w], { [w.name]: tf.tensor2d([[0, 2]]) }, 1); // ‖g‖ = 2 → local lr 0.0025
    expect(Array.from(w.dataSync())).toEqual([expect.closeTo(3, 6), expect.closeTo(4 - 0.005, 6)]);
  });

  it('saves and restores its slots', () => {
    const w = tf.variable(tf.tensor2d([[1, 2]]));
    const opt = createOptimizer('adam');
    opt.apply([w], { [w.name]: tf.tensor2d([[1, 1]]) }, 0.1);
    const { tensors, json } = opt.getState();
    const again = createOptimizer('adam');
    again.setState([w], tensors, json);
    expect(again.iterations).toBe(1);
    expect(() => createOptimizer('sgd').setState([w], tensors, json)).toThrow(/optimizer 'adam'/);
  });

  it('rejects a bad learning rate', () => {
    const w = tf.variable(tf.tensor2d([[1]]));
    expect(() => createOptimizer('sgd').apply([w], {}, NaN)).toThrow(/got NaN/);
  });
});

describe('warm-up + cosine schedule', () => {
  const s = { baseLr: 1, finalLr: 0.01, warmupSteps: 4, totalSteps: 15 };
  it('ramps linearly, then follows a half cosine that reaches the final rate at the last step run', () => {
    expect(learningRate(0, s)).toBeCloseTo(0.25);
    expect(learningRate(3, s)).toBeCloseTo(1);
    expect(learningRate(4, s)).toBeCloseTo(1);
    expect(learningRate(9, s)).toBeCloseTo(0.505);
    expect(learningRate(14, s)).toBeCloseTo(0.01, 10); // step totalSteps - 1: the last one
  });
});

describe('weighted k-NN monitor', () => {
  it('classifies by the exp(s/T)-weighted vote of the k nearest (hand example)', async () => {
    // Bank: two class-0 points near +x, one class-1 point at +y. Query near +y wins class 1 with k = 1,
    // and with k = 3 the two class-0 votes (cos 0.6, 0.6) lose to one class-1 vote (cos 0.8) only when T is small.
    const bank = tf.tensor2d([[1, 0], [0.99, 0.1], [0, 1]]);
    const labels = Int32Array.from([0, 0, 1]);
    const q = tf.tensor2d([[0.6, 0.8]]);
    expect(await knnAccuracy(bank, labels, q, Int32Array.from([1]), { k: 1 })).toBe(1);
    expect(await knnAccuracy(bank, labels, q, Int32Array.from([1]), { k: 3, temperature: 0.1 })).toBe(1); // e^8 > 2e^6
    expect(await knnAccuracy(bank, labels, q, Int32Array.from([1]), { k: 3, temperature: 10 })).toBe(0); // 2e^0.06 > e^0.08
  });

  it('gives the same answer in small chunks', async () => {
    const bank = tf.randomNormal([50, 4], 0, 1, 'float32', 1) as tf.Tensor2D;
    const bl = Int32Array.from({ length: 50 }, (_, i) => i % 3);
    const q = tf.randomNormal([20, 4], 0, 1, 'float32', 2) as tf.Tensor2D;
    const ql = Int32Array.from({ length: 20 }, (_, i) => i % 3);
    expect(await knnAccuracy(bank, bl, q, ql, { k: 5, maxEntries: 60 })).toBe(await knnAccuracy(bank, bl, q, ql, { k: 5 }));
  });
});
