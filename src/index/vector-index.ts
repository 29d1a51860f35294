/**
 * VectorIndex: nearest-neighbour search over unit-length vectors, keyed by numeric labels that the
 * catalogue assigns. Scores are cosine similarities (higher is closer).
 */
export interface Neighbour {
  label: number;
  score: number;
}

export interface VectorIndex {
  readonly dim: number;
  /** Live (not deleted) vectors. */
  size(): number;
  has(label: number): boolean;
  /** Adds or replaces the vector of `label`. */
  add(label: number, vector: Float32Array): void;
  /** Removes `label`; unknown labels are ignored. */
  remove(label: number): void;
  /** Up to k nearest live vectors, best first; `accept` filters labels during the search. */
  search(query: Float32Array, k: number, accept?: (label: number) => boolean): Neighbour[];
}

export function checkVector(vector: Float32Array, dim: number): void {
  if (vector.length !== dim) throw new RangeError(`vector has ${vector.length} dimensions, the index has ${dim}`);
}

/** Returns a unit-length copy (cosine search assumes it); a zero vector stays zero. */
export function normalize(vector: ArrayLike<number>): Float32Array {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += vector[i] * vector[i];
  const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  const out = new Float32Array(vector.length);
  for (let i = 0; i < vector.length; i++) out[i] = vector[i] * inv;
  return out;
}

/**
 * Cosine similarity from a cosine distance (1 - cos), kept in [-1, 1]: float rounding in the index makes an
 * image's distance to itself slightly negative, which would score 1.0000005.
 */
export function cosineFromDistance(d: number): number {
  return Math.min(1, Math.max(-1, 1 - d));
}
