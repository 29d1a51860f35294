import * as tf from '@tensorflow/tfjs';
import { sinkhorn, swavLoss } from '../../src/losses/swav';
import { t2, useCpu, value } from './helpers';

beforeAll(useCpu);

describe('SwAV (Caron et al. 2020)', () => {
  it('sinkhorn: hand-worked codes for a symmetric 2x2 problem', () => {
    // exp(s/ε) with ε = 1 is [[e, 1], [1, e]]: already balanced, so codes are its rows normalised.
    const q = sinkhorn(t2([[1, 0], [0, 1]]), 1, 3).arraySync();
    const a = Math.E / (1 + Math.E);
    expect(q[0][0]).toBeCloseTo(a, 5);
    expect(q[0][1]).toBeCloseTo(1 - a, 5);
    expect(q[1][0]).toBeCloseTo(1 - a, 5);
  });

  it('sinkhorn: rows are distributions and prototypes get equal mass', () => {
    const s = tf.randomUniform([12, 4], -1, 1, 'float32', 1) as tf.Tensor2D; // cosine scores
    const q = sinkhorn(s, 0.5, 20);
    const rows = q.sum(1).arraySync() as number[];
    const cols = q.sum(0).arraySync() as number[];
    rows.forEach((r) => expect(r).toBeCloseTo(1, 4));
    cols.forEach((c) => expect(c).toBeCloseTo(12 / 4, 1));
  });

  it('sinkhorn: finite and exact at a small ε with a prototype far from every sample', () => {
    // Prototype 2 scores ≤ −0.9 against all samples; with ε = 0.02, exp(s/ε) of its row is ~1e-41
    // after the global shift, which float32 rounds to 0. The reference computed in float64:
    const scores = [[1, -0.9], [0.9, -0.95], [0.8, -0.92]];
    const [eps, b, k] = [0.02, 3, 2];
    let q = [0, 1].map((j) => scores.map((r) => Math.exp(r[j] / eps))); // [K, B]
    for (let it = 0; it < 3; it++) {
      q = q.map((row) => row.map((v) => v / row.reduce((x, y) => x + y) / k));
      const cols = q[0].map((_, i) => q[0][i] + q[1][i]);
      q = q.map((row) => row.map((v, i) => v / cols[i] / b));
    }
    const got = sinkhorn(t2(scores), eps, 3).arraySync();
    scores.forEach((_, i) => [0, 1].forEach((j) => expect(got[i][j]).toBeCloseTo(q[j][i] * b, 5)));
  });

  it('swapped prediction with equal views is the entropy of the codes (hand value)', () => {
    // Codes = softmax rows [a, 1 − a] with τ = 1 and ε = 1, so ℓ = −Σ q log p = H(a).
    const s = t2([[1, 0], [0, 1]]);
    const a = Math.E / (1 + Math.E);
    const entropy = -(a * Math.log(a) + (1 - a) * Math.log(1 - a));
    expect(value(swavLoss([s, s], { temperature: 1, epsilon: 1 }))).toBeCloseTo(entropy, 5);
  });

  it('is invariant to permuting the batch', () => {
    const a = tf.randomNormal([6, 3], 0, 1, 'float32', 2) as tf.Tensor2D;
    const b = tf.randomNormal([6, 3], 0, 1, 'float32', 3) as tf.Tensor2D;
    const p = tf.tensor1d([5, 3, 1, 0, 2, 4], 'int32');
    expect(value(swavLoss([a.gather(p), b.gather(p)]))).toBeCloseTo(value(swavLoss([a, b])), 4);
  });

  it('sends no gradient through the codes', () => {
    const w = tf.variable(t2([[0.3, -0.2], [0.1, 0.4]]));
    const s = t2([[1, 0], [0, 1]]);
    // Code view = w·1 constant path; only the prediction of view 1 from view 0 codes should count.
    const { grads } = tf.variableGrads(() => swavLoss([w.mul(1) as tf.Tensor2D, s], { codeViews: [0] }), [w]);
    const g = grads[w.name].dataSync();
    expect(Array.from(g).every((v) => v === 0)).toBe(true);
  });

  it('rejects a bad temperature or a single view', () => {
    const s = t2([[1, 0]]);
    expect(() => swavLoss([s, s], { temperature: -1 })).toThrow(/got -1/);
    expect(() => swavLoss([s])).toThrow(/at least 2 views/);
  });
});
