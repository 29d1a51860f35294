import * as tf from '@tensorflow/tfjs';
import { estimateLogZ, memoryBankNce } from '../../src/losses/nce';
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
    expect(value(memoryBankNce(f, pos, neg, 4, Math.log(2), 1))).toBeCloseTo(hand, 5);
  });

  it('estimates Z as n times the mean score', () => {
    expect(value(estimateLogZ(f, pos, neg, 4, 1))).toBeCloseTo(Math.log((4 * (Math.exp(0.6) + Math.exp(0) + Math.exp(1))) / 3), 5);
  });

  it('stays finite at temperatures where exp(1/τ) overflows float32', () => {
    // τ = 0.005: exp(1/τ) = exp(200) is Inf in float32. Worked out in float64 logs:
    // log P = s/τ − log Z with log Z = log(n · mean exp(s/τ)) ≈ 200 + log(4/3) (the s = 1 term dominates).
    const tau = 0.005;
    const logZ = value(estimateLogZ(f, pos, neg, 4, tau));
    expect(logZ).toBeCloseTo(1 / tau + Math.log(4 / 3), 3);
    const softplus = (x: number): number => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
    const logP = (s: number): number => s / tau - logZ;
    const hand = softplus(Math.log(noise) - logP(0.6)) + softplus(logP(0) - Math.log(noise)) + softplus(logP(1) - Math.log(noise));
    expect(value(memoryBankNce(f, pos, neg, 4, logZ, tau))).toBeCloseTo(hand, 3);
  });

  it('is invariant to the order of noise samples and to scaling f', () => {
    const negSwapped = tf.tensor3d([[[1, 0], [0, 1]]]);
    const base = value(memoryBankNce(f, pos, neg, 4, Math.log(2), 1));
    expect(value(memoryBankNce(f.mul(5) as tf.Tensor2D, pos, negSwapped, 4, Math.log(2), 1))).toBeCloseTo(base, 5);
  });

  it('rejects a bad temperature, Z or shapes', () => {
    expect(() => memoryBankNce(f, pos, neg, 4, 2, 0)).toThrow(/got 0/);
    expect(() => memoryBankNce(f, pos, neg, 4, Infinity, 0.07)).toThrow(/log Z must be/);
    expect(() => memoryBankNce(f, pos, tf.tensor3d([[[1, 0, 0]]]), 4, 2, 0.07)).toThrow(/negatives must be/);
  });
});
