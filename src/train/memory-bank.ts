/**
 * A memory bank of one unit-length embedding per training image (Wu et al. 2018), held in
 * JavaScript memory: gathering and updating rows are plain copies. Composed into the membank
 * method (not inherited, as lightly does); it changes only through `update`, which the method
 * calls after an optimizer step, so computing a loss never mutates it.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../augment/rng';

export class MemoryBank {
  readonly rows: Float32Array;

  constructor(
    readonly size: number,
    readonly dim: number,
    seed: number,
  ) {
    if (!Number.isInteger(size) || size < 2) throw new RangeError(`memory bank needs at least 2 entries, got ${size}`);
    const rng = new Rng(seed);
    this.rows = Float32Array.from({ length: size * dim }, () => rng.uniform(-1, 1));
    for (let i = 0; i < size; i++) this.normalizeRow(i);
  }

  private normalizeRow(i: number): void {
    const r = this.rows.subarray(i * this.dim, (i + 1) * this.dim);
    let s = 0;
    for (const v of r) s += v * v;
    const inv = 1 / Math.sqrt(s + 1e-12);
    for (let k = 0; k < r.length; k++) r[k] *= inv;
  }

  /** Entries at `indices`: [indices.length, dim] (or [..., dim] with `shape` for the leading dims). */
  gather(indices: ArrayLike<number>, shape: number[] = [indices.length]): tf.Tensor {
    const out = new Float32Array(indices.length * this.dim);
    for (let i = 0; i < indices.length; i++) {
      const k = indices[i];
      if (!(k >= 0 && k < this.size)) throw new RangeError(`memory bank index ${k} out of range [0, ${this.size})`);
      out.set(this.rows.subarray(k * this.dim, (k + 1) * this.dim), i * this.dim);
    }
    return tf.tensor(out, [...shape, this.dim]);
  }

  /** v_i ← normalize(m·v_i + (1 − m)·f_i) for each row i of `features` ([N, dim], unit rows). */
  update(indices: ArrayLike<number>, features: Float32Array, momentum: number): void {
    if (features.length !== indices.length * this.dim) throw new RangeError(`${features.length} values for ${indices.length} rows of ${this.dim}`);
    for (let i = 0; i < indices.length; i++) {
      const base = indices[i] * this.dim;
      for (let k = 0; k < this.dim; k++) this.rows[base + k] = momentum * this.rows[base + k] + (1 - momentum) * features[i * this.dim + k];
      this.normalizeRow(indices[i]);
    }
  }

  toTensor(): tf.Tensor2D {
    return tf.tensor2d(this.rows, [this.size, this.dim]);
  }

  load(t: tf.Tensor): void {
    if (t.shape[0] !== this.size || t.shape[1] !== this.dim) throw new Error(`memory bank in checkpoint is [${t.shape.join(', ')}], expected [${this.size}, ${this.dim}]`);
    this.rows.set(t.dataSync() as Float32Array);
  }
}
