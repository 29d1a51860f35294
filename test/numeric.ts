/** Deterministic inputs and float32 comparisons shared by the backend-agreement tests. */

/** Deterministic values in [−0.5, 0.5) (LCG), so both backends see identical inputs. */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 4294967296 - 0.5;
  }
  return out;
}

/**
 * Max |a − b| over max |a|: float32 tolerance for sums whose order differs between backends. `scale`
 * floors the denominator, for a gradient that is zero in exact arithmetic and float noise on both sides.
 */
export function relError(ref: Float32Array | Int32Array | Uint8Array, got: Float32Array | Int32Array | Uint8Array, scale = 1e-12): number {
  expect(got.length).toBe(ref.length);
  let maxDiff = 0;
  let maxRef = scale;
  for (let i = 0; i < ref.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(ref[i] - got[i]));
    maxRef = Math.max(maxRef, Math.abs(ref[i]));
  }
  return maxDiff / maxRef;
}
