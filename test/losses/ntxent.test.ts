import * as tf from '@tensorflow/tfjs';
import { ntXent, ntXentPair } from '../../src/losses/ntxent';
import { ids, t2, useCpu, value } from './helpers';

beforeAll(useCpu);

// Four unit vectors: a, b are view 1 of images 0, 1; c, d are view 2. Cosines:
// a·b = 0, a·c = 0.6, a·d = 0.8, b·c = 0.8, b·d = 0.6, c·d = 0.96.
const z1 = [[1, 0], [0, 1]];
const z2 = [[0.6, 0.8], [0.8, 0.6]];
const E = Math.exp;
// τ = 1. Anchors a and b: positive 0.6 against {0, 0.6, 0.8}; anchors c and d: 0.6 against {0.6, 0.8, 0.96}.
const LA = -0.6 + Math.log(E(0) + E(0.6) + E(0.8)); // 1.018925...
const LC = -0.6 + Math.log(E(0.6) + E(0.8) + E(0.96)); // 1.296023...
const HAND = (2 * LA + 2 * LC) / 4; // 1.157474...

describe('ntXent (SimCLR eq. 1)', () => {
  it('matches the value worked out by hand on 2 images x 2 views', () => {
    expect(HAND).toBeCloseTo(1.157474, 5);
    expect(value(ntXentPair(t2(z1), t2(z2), 1))).toBeCloseTo(HAND, 5);
  });

  it('divides similarities by the temperature', () => {
    const T = 0.5;
    const la = -0.6 / T + Math.log(E(0) + E(0.6 / T) + E(0.8 / T));
    const lc = -0.6 / T + Math.log(E(0.6 / T) + E(0.8 / T) + E(0.96 / T));
    expect(value(ntXentPair(t2(z1), t2(z2), T))).toBeCloseTo((la + lc) / 2, 5);
  });

  it('the id form with views stacked equals the pair form', () => {
    const z = t2([...z1, ...z2]);
    expect(value(ntXent(z, ids([0, 1, 0, 1]), 1))).toBeCloseTo(HAND, 5);
  });

  it('is invariant to permuting the batch, swapping views and scaling rows before normalisation', () => {
    const a = tf.randomNormal([6, 5], 0, 1, 'float32', 1) as tf.Tensor2D;
    const b = tf.randomNormal([6, 5], 0, 1, 'float32', 2) as tf.Tensor2D;
    const base = value(ntXentPair(a, b, 0.3));
    const perm = tf.tensor1d([3, 0, 5, 1, 4, 2], 'int32');
    expect(value(ntXentPair(a.gather(perm), b.gather(perm), 0.3))).toBeCloseTo(base, 5);
    expect(value(ntXentPair(b, a, 0.3))).toBeCloseTo(base, 5);
    const scale = tf.tensor2d([[2], [0.1], [7], [1], [3], [0.5]]);
    expect(value(ntXentPair(a.mul(scale) as tf.Tensor2D, b.mul(3) as tf.Tensor2D, 0.3))).toBeCloseTo(base, 5);
  });

  it('is low when views agree and distinct images are orthogonal', () => {
    const eye = tf.eye(4) as tf.Tensor2D;
    const low = value(ntXentPair(eye, eye, 0.1));
    expect(low).toBeLessThan(1e-3);
  });

  it('rejects a bad temperature with the value in the message', () => {
    expect(() => ntXentPair(t2(z1), t2(z2), 0)).toThrow(RangeError);
    expect(() => ntXentPair(t2(z1), t2(z2), -0.5)).toThrow(/got -0.5/);
    expect(() => ntXentPair(t2(z1), t2(z2), NaN)).toThrow(/got NaN/);
  });

  it('rejects views that do not pair up', () => {
    expect(() => ntXentPair(t2(z1), t2([[1, 0]]), 0.5)).toThrow(/same shape/);
    expect(() => ntXent(t2(z1), ids([0, 1, 2]), 0.5)).toThrow(/3 entries for 2 rows/);
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    const [a, b] = [t2(z1), t2(z2)];
    ntXentPair(a, b, 0.5).dispose();
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
