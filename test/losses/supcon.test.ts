import * as tf from '@tensorflow/tfjs';
import { ntXent, ntXentPair } from '../../src/losses/ntxent';
import { supCon } from '../../src/losses/supcon';
import { ids, t2, useCpu, value } from './helpers';

beforeAll(useCpu);

describe('supCon (Khosla et al. 2020, eq. 2)', () => {
  it('equals NT-Xent when every label is distinct', () => {
    const a = tf.randomNormal([5, 4], 0, 1, 'float32', 3) as tf.Tensor2D;
    const b = tf.randomNormal([5, 4], 0, 1, 'float32', 4) as tf.Tensor2D;
    const z = tf.concat([a, b]) as tf.Tensor2D;
    expect(value(supCon(z, ids([7, 3, 9, 0, 1]), 0.2))).toBeCloseTo(value(ntXentPair(a, b, 0.2)), 5);
  });

  it('averages −log p over all positives: identical rows, one class → log 3', () => {
    // 2 images x 2 views, one label: every anchor has 3 positives with p = 1/3 each.
    const z = t2([[1, 2], [1, 2], [1, 2], [1, 2]]);
    expect(value(supCon(z, ids([0, 0]), 0.5))).toBeCloseTo(Math.log(3), 5);
  });

  it('matches a hand-worked value and leaves out an anchor without positive (no NaN)', () => {
    // One view; labels [0, 0, 1]: anchor 2 has no positive. τ = 1.
    // anchor 0: positive b (cos 0) vs c (0.6) → log(1 + e^0.6); anchor 1: positive a (0) vs c (0.8) → log(1 + e^0.8).
    const z = t2([[1, 0], [0, 1], [0.6, 0.8]]);
    const hand = (Math.log(1 + Math.exp(0.6)) + Math.log(1 + Math.exp(0.8))) / 2;
    const got = value(supCon(z, ids([0, 0, 1]), 1));
    expect(Number.isNaN(got)).toBe(false);
    expect(got).toBeCloseTo(hand, 5);
  });

  it('gives 0, not NaN, when no anchor has a positive', () => {
    const got = value(supCon(t2([[1, 0], [0, 1]]), ids([0, 1]), 0.1));
    expect(got).toBe(0);
  });

  it('gradients stay finite with anchors lacking positives', () => {
    const z = tf.variable(t2([[1, 0], [0, 1], [0.6, 0.8]]));
    const { grads } = tf.variableGrads(() => supCon(z, ids([0, 0, 1]), 0.1), [z]);
    expect(Array.from(grads[z.name].dataSync()).every(Number.isFinite)).toBe(true);
  });

  it('is invariant to permuting the batch and scaling rows', () => {
    const z = tf.randomNormal([8, 3], 0, 1, 'float32', 5) as tf.Tensor2D;
    const labels = [0, 1, 0, 2, 1, 1, 2, 0];
    const base = value(supCon(z, ids(labels), 0.3));
    const perm = [7, 2, 4, 0, 6, 1, 3, 5];
    const zp = z.gather(tf.tensor1d(perm, 'int32')) as tf.Tensor2D;
    expect(value(supCon(zp, ids(perm.map((i) => labels[i])), 0.3))).toBeCloseTo(base, 5);
    expect(value(supCon(z.mul(4) as tf.Tensor2D, ids(labels), 0.3))).toBeCloseTo(base, 5);
    expect(value(ntXent(z, ids(labels), 0.3))).toBeCloseTo(base, 5);
  });

  it('scales by τ/τ_base and rejects bad temperatures', () => {
    const z = tf.randomNormal([4, 3], 0, 1, 'float32', 6) as tf.Tensor2D;
    const l = ids([0, 1]);
    expect(value(supCon(z, l, 0.1, 0.07))).toBeCloseTo((value(supCon(z, l, 0.1)) * 0.1) / 0.07, 4);
    expect(() => supCon(z, l, 0)).toThrow(/temperature must be a finite number > 0, got 0/);
    expect(() => supCon(z, ids([0, 1, 2]), 0.1)).toThrow(/does not divide/);
  });
});
