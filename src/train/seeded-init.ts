/**
 * Reproducible weight initialisation. tfjs-layers initialisers draw their seed from Math.random
 * when none is given, and buildResNet does not take one; running the build with Math.random
 * temporarily replaced by a seeded generator makes the initial weights a function of the seed, so
 * two runs with the same seed start (and, on the same backend, stay) identical.
 */
import { Rng } from '../augment/rng';

export function withSeededRandom<T>(seed: number, build: () => T): T {
  const original = Math.random;
  const rng = new Rng(seed);
  Math.random = () => rng.next();
  try {
    return build();
  } finally {
    Math.random = original;
  }
}
