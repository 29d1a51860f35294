/**
 * Conv2DBackpropFilter on wasm per layer of the shipped encoder: the SIMD kernel (the registered one)
 * against the XNNPACK formulation it replaced, and the forward convolution of the same layer, in the
 * same run. Prints one JSON line (milliseconds per call, and XNNPACK / SIMD).
 *
 *   npx tsx bench/filter-grad.ts [--batch 256] [--iters 5] [--wasm-threads 1]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { conv2dBackpropFilterImpl } from '../src/runtime/kernels/conv2d-backprop-filter';
import { simdFilterGradStatus } from '../src/runtime/kernels/simd-filter-grad';
import { arg } from './args';
import { machine, meanMs, roundTo } from './measure';

/** [input size, in channels, out channels, kernel, stride]: resnet-mini at widths 16/32/64, 28 px. */
const LAYERS: [number, number, number, number, number][] = [
  [28, 1, 16, 3, 1], // stem
  [28, 16, 16, 3, 1], // stage 1 (twice)
  [28, 16, 32, 3, 2], // stage 2 entry
  [28, 16, 32, 1, 2], // its shortcut
  [14, 32, 32, 3, 1],
  [14, 32, 64, 3, 2], // stage 3 entry
  [14, 32, 64, 1, 2],
  [7, 64, 64, 3, 1],
];

async function main(): Promise<void> {
  const batch = Number(arg('batch', 'BENCH_BATCH', '256'));
  const iters = Number(arg('iters', 'BENCH_ITERS', '5'));
  const threads = Number(arg('wasm-threads', 'BENCH_WASM_THREADS', '1'));
  await initBackend('wasm', { wasmThreads: threads });

  const layers: Record<string, { xnnpackMs: number; simdMs: number; forwardMs: number; speedup: number }> = {};
  let xnnpackTotal = 0;
  let simdTotal = 0;
  for (const [size, c, o, k, s] of LAYERS) {
    const x = tf.randomNormal([batch, size, size, c], 0, 1, 'float32', 1) as tf.Tensor4D;
    const out = Math.ceil(size / s);
    const dy = tf.randomNormal([batch, out, out, o], 0, 1, 'float32', 2) as tf.Tensor4D;
    const filter = tf.randomNormal([k, k, c, o], 0, 1, 'float32', 3) as tf.Tensor4D;
    const filterShape: [number, number, number, number] = [k, k, c, o];
    const attrs = { strides: s, pad: 'same', dataFormat: 'NHWC', filterShape } as unknown as tf.NamedAttrMap;
    const xnnpackMs = await meanMs(iters, () => conv2dBackpropFilterImpl(x, dy, filterShape, s, 'same'));
    const simdMs = await meanMs(iters, () => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, attrs) as tf.Tensor);
    const forwardMs = await meanMs(iters, () => tf.conv2d(x, filter, s, 'same'));
    layers[`${size}x${size}x${c} ${k}x${k}/${s} → ${o}`] = {
      xnnpackMs: roundTo(xnnpackMs, 1),
      simdMs: roundTo(simdMs, 1),
      forwardMs: roundTo(forwardMs, 1),
      speedup: roundTo(xnnpackMs / simdMs, 2),
    };
    xnnpackTotal += xnnpackMs;
    simdTotal += simdMs;
    tf.dispose([x, dy, filter]);
  }

  console.log(
    JSON.stringify({
      bench: 'filter-grad',
      backend: 'wasm',
      wasmThreads: threads,
      filterGradThreads: simdFilterGradStatus(),
      batch,
      iters,
      machine: machine(),
      layers,
      totalMs: { xnnpack: roundTo(xnnpackTotal, 1), simd: roundTo(simdTotal, 1), speedup: roundTo(xnnpackTotal / simdTotal, 2) },
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
