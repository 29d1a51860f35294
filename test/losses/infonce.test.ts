import * as tf from '@tensorflow/tfjs';
import { infoNce } from '../../src/losses/infonce';
import { t2, useCpu, value } from './helpers';

beforeAll(useCpu);

describe('infoNce (MoCo eq. 1)', () => {
  it('matches the value worked out by hand', () => {
    // q·k₊ = 0.6, q·queue = [0, −1]; τ = 0.5 → logits [1.2, 0, −2].
    const hand = -1.2 + Math.log(Math.exp(1.2) + Math.exp(0) + Math.exp(-2));
    expect(value(infoNce(t2([[1, 0]]), t2([[0.6, 0.8]]), t2([[0, 1], [-1, 0]]), 0.5))).toBeCloseTo(hand, 5);
  });

  it('averages over queries and is invariant to permutations and scaling', () => {
    const q = tf.randomNormal([4, 3], 0, 1, 'float32', 1) as tf.Tensor2D;
    const k = tf.randomNormal([4, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
    const queue = tf.randomNormal([6, 3], 0, 1, 'float32', 3) as tf.Tensor2D;
    const base = value(infoNce(q, k, queue, 0.2));
    const rows = (x: tf.Tensor2D, p: number[]): tf.Tensor2D => x.gather(tf.tensor1d(p, 'int32'));
    expect(value(infoNce(rows(q, [2, 0, 3, 1]), rows(k, [2, 0, 3, 1]), queue, 0.2))).toBeCloseTo(base, 5);
    expect(value(infoNce(q, k, rows(queue, [5, 4, 3, 2, 1, 0]), 0.2))).toBeCloseTo(base, 5);
    expect(value(infoNce(q.mul(3) as tf.Tensor2D, k.mul(0.2) as tf.Tensor2D, queue.mul(9) as tf.Tensor2D, 0.2))).toBeCloseTo(base, 5);
    const each = [0, 1, 2, 3].map((i) => value(infoNce(q.slice([i, 0], [1, 3]), k.slice([i, 0], [1, 3]), queue, 0.2)));
    expect(base).toBeCloseTo(each.reduce((a, b) => a + b) / 4, 5);
  });

  it('is 0 with an empty queue (only the positive)', () => {
    expect(value(infoNce(t2([[1, 0]]), t2([[0, 1]]), null, 0.2))).toBeCloseTo(0, 6);
  });

  it('rejects a bad temperature and a queue of the wrong width', () => {
    expect(() => infoNce(t2([[1, 0]]), t2([[0, 1]]), null, 0)).toThrow(/got 0/);
    expect(() => infoNce(t2([[1, 0]]), t2([[0, 1]]), t2([[1, 2, 3]]), 0.2)).toThrow(/queue must be \[K, 2\]/);
  });
});
