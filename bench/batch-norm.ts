/**
 * Batch norm in training, against the stock layer in the same run: one training forward + backward
 * (dx, dγ, dβ) of the layer in src/model/batch-norm vs tfjs-layers' stock layer, at the shipped
 * encoder's three activation sizes and a projection head's [B, 512]. wasm backend with the training
 * kernels, one thread unless --wasm-threads. Prints one JSON line (milliseconds, and stock / ours).
 *
 *   npx tsx bench/batch-norm.ts [--batch 256] [--iters 10] [--wasm-threads 1]
 */
import * as tf from '@tensorflow/tfjs';
import { BatchNormalization } from '../src/model/batch-norm';
import { initBackend } from '../src/runtime/backend';
import { arg } from './args';
import { machine, meanMs, roundTo } from './measure';

/** Training forward + backward (dx, dγ, dβ) of one batch-norm layer, loss Σ y·w. */
async function batchNormMs(layer: tf.layers.Layer, shape: number[], iters: number): Promise<number> {
  // x as a variable, so one backward pass gives dx with dγ and dβ
  const x = tf.variable(tf.randomNormal(shape, 0.5, 2, 'float32', 1));
  const w = tf.randomNormal(shape, 0, 1, 'float32', 2);
  layer.build(shape);
  const vars = [x, ...layer.trainableWeights.map((v) => v.read() as tf.Variable)];
  const ms = await meanMs(iters, () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, w)) as tf.Scalar, vars);
      return [value, ...Object.values(grads)];
    }),
  );
  tf.dispose([x, w]);
  layer.weights.forEach((v) => v.dispose());
  return ms;
}

async function main(): Promise<void> {
  const batch = Number(arg('batch', 'BENCH_BATCH', '256'));
  const iters = Number(arg('iters', 'BENCH_ITERS', '10'));
  const threads = Number(arg('wasm-threads', 'BENCH_WASM_THREADS', '1'));
  await initBackend('wasm', { wasmThreads: threads });

  // The shipped encoder's activations (widths 16/32/64 at 28, 14, 7 px) and a projection head's.
  const batchNorm: Record<string, { stockMs: number; oursMs: number; speedup: number }> = {};
  for (const shape of [[batch, 28, 28, 16], [batch, 14, 14, 32], [batch, 7, 7, 64], [batch, 512]]) {
    const stockMs = await batchNormMs(tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }), shape, iters);
    const oursMs = await batchNormMs(new BatchNormalization({ momentum: 0.9, epsilon: 1e-5 }), shape, iters);
    batchNorm[shape.join('x')] = { stockMs: roundTo(stockMs, 2), oursMs: roundTo(oursMs, 2), speedup: roundTo(stockMs / oursMs, 2) };
  }

  console.log(
    JSON.stringify({
      bench: 'batch-norm',
      backend: 'wasm',
      wasmThreads: threads,
      iters,
      machine: machine(),
      batchNormTrainForwardBackward: batchNorm,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
