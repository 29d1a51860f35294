/**
 * Gradient caching: a contrastive batch larger than memory allows, computed in chunks with the same
 * gradient (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
 * Setup", https://arxiv.org/abs/2101.06983, section 3.2).
 *
 * The loss depends on the network only through the projections z, so by the chain rule
 *   dL/dθ = Σ_chunks (∂z_chunk/∂θ)ᵀ · dL/dz_chunk.
 * 1. Forward every chunk of every view without the gradient tape: z, no activations kept.
 * 2. dL/dz of the whole batch: only the loss is differentiated, on [V·N, P] numbers.
 * 3. Per chunk, forward again on the tape and take the gradient of Σ z_chunk · dL/dz_chunk (a
 *    constant); sum over chunks.
 * Only one chunk's activations are alive at a time, for about one more forward pass per step.
 * Batch norm normalises each chunk with its own statistics (ghost batch norm), in both forward
 * passes alike, so the gradient is exact for that network. Its moving averages are put back after
 * step 1, so they move once per chunk, in step 3.
 *
 * Needs a method whose loss reads nothing of the network but the projections (`lossFromProjections`:
 * SimCLR, SupCon); MoCo's keys, the memory bank and SwAV's prototypes are state of their own.
 */
import * as tf from '@tensorflow/tfjs';
import { ContrastiveMethod, type TrainBatch } from './method';

/**
 * Row ranges [start, end) splitting `n` rows into the fewest chunks of at most `chunk`, of near-equal
 * sizes: a ragged last chunk of one or two images would give batch norm almost no statistics.
 */
export function chunkRanges(n: number, chunk: number): [number, number][] {
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new RangeError(`grad-cache chunk must be an integer >= 1, got ${chunk}`);
  const count = Math.ceil(n / chunk);
  return Array.from({ length: count }, (_, i) => [Math.floor((i * n) / count), Math.floor(((i + 1) * n) / count)] as [number, number]);
}

/** Projections of one view, chunk by chunk, in training mode (batch norm per chunk): [N, P]. */
function projectInChunks(method: ContrastiveMethod, view: tf.Tensor4D, ranges: [number, number][]): tf.Tensor2D {
  return tf.tidy(() => tf.concat(ranges.map(([s, e]) => method.forward(tf.slice(view, s, e - s)).z)) as tf.Tensor2D);
}

/**
 * Whether a method (or its class's prototype) can train with gradient caching: its loss reads nothing
 * of the network but the projections, i.e. it has `lossFromProjections` and keeps the base class's
 * computeLoss (an override adds something the projections alone do not give).
 */
export function supportsGradCache(method: ContrastiveMethod): boolean {
  return method.lossFromProjections !== undefined && method.computeLoss === ContrastiveMethod.prototype.computeLoss;
}

/**
 * Loss and gradients of one step, computed in chunks of `chunk` images per view. Returns what
 * tf.variableGrads would for the same network with batch norm per chunk; the caller disposes both.
 */
export function gradCacheStep(method: ContrastiveMethod, batch: TrainBatch, vars: tf.Variable[], chunk: number): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  if (!supportsGradCache(method)) throw new Error(`${method.name} cannot train with gradient caching: its loss needs more than the projections`);
  const lossOf = method.lossFromProjections!.bind(method);
  const ranges = chunkRanges(batch.indices.length, chunk);

  // 1. z of every view, off the tape; the moving averages are restored afterwards, also on failure.
  const moving = method.network.nonTrainableWeights;
  const saved = moving.map((w) => tf.clone(w.read()));
  const zs: tf.Tensor2D[] = [];
  let value: tf.Scalar;
  let dz: tf.Tensor[];
  try {
    for (const view of batch.views) zs.push(projectInChunks(method, view, ranges));
    // 2. The loss and its gradient with respect to each view's z (the network is not run here).
    ({ value, grads: dz } = tf.tidy(() => {
      const f = (...z: tf.Tensor[]) => lossOf(z as tf.Tensor2D[], batch);
      const { value, grads } = tf.valueAndGrads(f)(zs);
      return { value: value as tf.Scalar, grads };
    }));
  } finally {
    moving.forEach((w, i) => w.write(saved[i]));
    tf.dispose([...saved, ...zs]);
  }

  // 3. Per chunk: the gradient of Σ z · dL/dz, summed.
  const sums: tf.NamedTensorMap = {};
  try {
    batch.views.forEach((view, v) => {
      for (const [s, e] of ranges) {
        const { value: surrogate, grads } = tf.variableGrads(() => {
          const z = method.forward(tf.slice(view, s, e - s)).z;
          return tf.sum(tf.mul(z, tf.slice(dz[v], s, e - s)));
        }, vars);
        surrogate.dispose();
        for (const [name, g] of Object.entries(grads)) {
          const prev = sums[name];
          sums[name] = prev ? tf.add(prev, g) : g;
          if (prev) tf.dispose([prev, g]);
        }
      }
    });
  } catch (err) {
    tf.dispose([value, ...Object.values(sums)]);
    throw err;
  } finally {
    tf.dispose(dz);
  }
  return { value, grads: sums };
}
