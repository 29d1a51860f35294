/**
 * Exact nearest neighbours by cosine similarity, as one matrix product per chunk of queries (tfjs,
 * so it runs on the fastest backend available). The ground truth for every quality metric.
 */
import * as tf from '@tensorflow/tfjs';

/** Row-major table of the k nearest bank rows of each query, best first. */
export interface NeighbourTable {
  queries: number;
  k: number;
  /** [queries * k] bank row indices. */
  indices: Int32Array;
  /** [queries * k] cosine similarities. */
  scores: Float32Array;
}

export interface ExactOptions {
  /** Queries are the bank itself (same rows, same order): a row is never its own neighbour (leave-one-out). */
  excludeSelf?: boolean;
  /** Largest similarity matrix (queries x bank entries) computed at once; bounds memory. */
  maxEntries?: number;
}

/**
 * bank: [N * dim] and queries: [Q * dim], unit-length rows. Returns min(k, N - excludeSelf) neighbours
 * per query.
 */
export async function exactNeighbours(bank: Float32Array, queries: Float32Array, dim: number, k: number, opts: ExactOptions = {}): Promise<NeighbourTable> {
  const n = bank.length / dim;
  const q = queries.length / dim;
  if (!Number.isInteger(n) || !Number.isInteger(q)) throw new RangeError(`bank (${bank.length}) and queries (${queries.length}) must be multiples of dim ${dim}`);
  if (opts.excludeSelf && n !== q) throw new RangeError(`excludeSelf needs queries == bank, got ${q} queries for ${n} bank rows`);
  const kk = Math.max(0, Math.min(k, n - (opts.excludeSelf ? 1 : 0)));
  const indices = new Int32Array(q * kk);
  const scores = new Float32Array(q * kk);
  if (kk === 0) return { queries: q, k: 0, indices, scores };
  const chunk = Math.max(1, Math.floor((opts.maxEntries ?? 16_000_000) / n));
  // [D, N]: transposed once up front. On wasm, matMul(q, bank, false, true) takes a slow path; a
  // plain product with a pre-transposed right operand keeps bench/eval-knn under a minute.
  const bankT = tf.tidy(() => tf.tensor2d(bank, [n, dim]).transpose()); // [D, N]
  try {
    for (let s = 0; s < q; s += chunk) {
      const b = Math.min(chunk, q - s);
      const top = tf.tidy(() => {
        let sim = tf.tensor2d(queries.subarray(s * dim, (s + b) * dim), [b, dim]).matMul(bankT); // [B, N]
        if (opts.excludeSelf) sim = sim.sub(tf.oneHot(tf.range(s, s + b, 1, 'int32'), n).mul(4)); // cosine >= -1, so -3 ranks last
        return tf.topk(sim, kk); // values, indices: [B, k]
      });
      const [v, i] = await Promise.all([top.values.data(), top.indices.data()]);
      tf.dispose([top.values, top.indices]);
      scores.set(v as Float32Array, s * kk);
      indices.set(i as Int32Array, s * kk);
    }
  } finally {
    bankT.dispose();
  }
  return { queries: q, k: kk, indices, scores };
}
