/**
 * Exact (brute-force) cosine search: the ground truth that ANN recall is measured against, and a
 * fine index for small catalogues. Vectors live in one growable Float32Array, rows addressed by slot.
 */
import { checkVector, Neighbour, VectorIndex } from './vector-index';

export class ExactIndex implements VectorIndex {
  private data: Float32Array;
  private labels: number[] = [];
  private slotOf = new Map<number, number>();

  constructor(readonly dim: number, initialCapacity = 1024) {
    this.data = new Float32Array(dim * Math.max(1, initialCapacity));
  }

  size(): number {
    return this.labels.length;
  }

  has(label: number): boolean {
    return this.slotOf.has(label);
  }

  add(label: number, vector: Float32Array): void {
    checkVector(vector, this.dim);
    let slot = this.slotOf.get(label);
    if (slot === undefined) {
      slot = this.labels.length;
      if ((slot + 1) * this.dim > this.data.length) {
        const grown = new Float32Array(this.data.length * 2);
        grown.set(this.data);
        this.data = grown;
      }
      this.labels.push(label);
      this.slotOf.set(label, slot);
    }
    this.data.set(vector, slot * this.dim);
  }

  remove(label: number): void {
    const slot = this.slotOf.get(label);
    if (slot === undefined) return;
    // Move the last row into the hole so rows stay dense.
    const last = this.labels.length - 1;
    if (slot !== last) {
      const moved = this.labels[last];
      this.data.copyWithin(slot * this.dim, last * this.dim, (last + 1) * this.dim);
      this.labels[slot] = moved;
      this.slotOf.set(moved, slot);
    }
    this.labels.pop();
    this.slotOf.delete(label);
  }

  search(query: Float32Array, k: number, accept?: (label: number) => boolean): Neighbour[] {
    checkVector(query, this.dim);
    const top = new TopK(k);
    const { dim, data } = this;
    for (let s = 0; s < this.labels.length; s++) {
      const label = this.labels[s];
      let dot = 0;
      const base = s * dim;
      for (let j = 0; j < dim; j++) dot += data[base + j] * query[j];
      if (top.wouldAccept(dot) && (!accept || accept(label))) top.push(label, dot);
    }
    return top.sorted();
  }
}

/** Keeps the k best (label, score) pairs; ties keep the earlier-seen item. */
export class TopK {
  private items: Neighbour[] = [];
  constructor(private readonly k: number) {}

  wouldAccept(score: number): boolean {
    return this.k > 0 && (this.items.length < this.k || score > this.items[this.items.length - 1].score);
  }

  push(label: number, score: number): void {
    if (!this.wouldAccept(score)) return;
    // Insertion into a short sorted array: k is small (<= a few hundred).
    let i = this.items.length;
    while (i > 0 && this.items[i - 1].score < score) i--;
    this.items.splice(i, 0, { label, score });
    if (this.items.length > this.k) this.items.pop();
  }

  sorted(): Neighbour[] {
    return this.items.slice();
  }
}
