/** Seeded synthetic embeddings: a mixture of Gaussian clusters on the unit sphere (embeddings cluster by class). */
import { Rng } from '../src/augment/rng';
import { normalize } from '../src/index/vector-index';

function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function gaussian(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
}

/** `centreSeed` fixes the cluster centres, `seed` the samples: two calls sharing a centreSeed draw from the same clusters. */
export function clustered(n: number, dim: number, clusters: number, spread: number, seed: number, centreSeed = seed): Float32Array[] {
  const centreRand = rng(centreSeed);
  const centres = Array.from({ length: clusters }, () => normalize(Array.from({ length: dim }, () => gaussian(centreRand))));
  const rand = rng(seed * 7919 + 1);
  return Array.from({ length: n }, () => {
    const c = centres[Math.floor(rand() * clusters)];
    return normalize(Array.from(c, (x) => x + spread * gaussian(rand)));
  });
}

