import * as tf from '@tensorflow/tfjs';
import { estimateZ, memoryBankNce } from '../../src/losses/nce';
import { t2, useCpu, value } from './helpers';

beforeAll(useCpu);

describe('memoryBankNce (Wu et al. 2018, eqs. 3-5)', () => {
  // One image, f = [1, 0]; its bank entry [0.6, 0.8]; noise entries [0, 1] and [1, 0]. n = 4, m = 2, Z = 2, τ = 1.
  const f = t2([[1, 0]]);
  const pos = t2([[0.6, 0.8]]);
  const neg = tf.tensor3d([[[0, 1], [1, 0]]]);
  const P = (s: number): number => Math.exp(s) / 2; // P(j | v) = exp(s/τ) / Z
  const noise = 2 / 4; // m · P_n = m / n

  it('matches the value worked out by hand', () => {
    const hand = -Math.log(P(0.6) / (P(0.6) + noise)) - Math.log(noise / (P(0) + noise)) - Math.log(noise / (P(1) + noise));
    expect(value(memoryBankNce(f, pos, neg, 4, 2, 1))).toBeCloseTo(hand, 5);
  });

  it('estimates Z as n times the mean score', () => {
    expect(value(estimateZ(f, pos, neg, 4, 1))).toBeCloseTo((4 * (Math.exp(0.6) + Math.exp(0) + Math.exp(1))) / 3, 4);
  });

  it('is invariant to the order of noise samples and to scaling f', () => {
    const negSwapped = tf.tensor3d([[[1, 0], [0, 1]]]);
    const base = value(memoryBankNce(f, pos, neg, 4, 2, 1));
    expect(value(memoryBankNce(f.mul(5) as tf.Tensor2D, pos, negSwapped, 4, 2, 1))).toBeCloseTo(base, 5);
  });

  it('rejects a bad temperature, Z or shapes', () => {
    expect(() => memoryBankNce(f, pos, neg, 4, 2, 0)).toThrow(/got 0/);
    expect(() => memoryBankNce(f, pos, neg, 4, 0, 0.07)).toThrow(/Z must be/);
    expect(() => memoryBankNce(f, pos, tf.tensor3d([[[1, 0, 0]]]), 4, 2, 0.07)).toThrow(/negatives must be/);
  });
});
