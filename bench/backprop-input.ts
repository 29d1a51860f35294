/**
 * Conv2DBackpropInput on wasm per layer of a ResNet-18-shaped encoder (small stem, 28 px): the
 * registered kernel against the forward convolution of the same layer, and the kernel's tap gathering
 * done two ways in the same run: a row copy in JS (what the kernel does) and wasm's GatherV2 (what it
 * did before, element by element). Totals weigh each layer by how often it occurs in the encoder.
 * Prints one JSON line (milliseconds per call).
 *
 *   npx tsx bench/backprop-input.ts [--batch 128] [--iters 5] [--wasm-threads 2] [--widths 32,64,128,256]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { gatherTaps, tapRows } from '../src/runtime/kernels/conv2d-backprop-input';
import { arg } from './args';
import { machine, meanMs, roundTo } from './measure';

/** [input size, in channels, out channels, kernel, stride, times in the encoder] for stage widths w. */
function layers(w: number[]): [number, number, number, number, number, number][] {
  return [
    [28, 1, w[0], 3, 1, 1], // stem
    [28, w[0], w[0], 3, 1, 4], // stage 1
    [28, w[0], w[1], 3, 2, 1], // stage 2 entry, its shortcut, the rest
    [28, w[0], w[1], 1, 2, 1],
    [14, w[1], w[1], 3, 1, 3],
    [14, w[1], w[2], 3, 2, 1],
    [14, w[1], w[2], 1, 2, 1],
    [7, w[2], w[2], 3, 1, 3],
    [7, w[2], w[3], 3, 2, 1],
    [7, w[2], w[3], 1, 2, 1],
    [4, w[3], w[3], 3, 1, 3],
  ];
}

async function main(): Promise<void> {
  const batch = Number(arg('batch', 'BENCH_BATCH', '128'));
  const iters = Number(arg('iters', 'BENCH_ITERS', '5'));
  const threads = Number(arg('wasm-threads', 'BENCH_WASM_THREADS', '2'));
  const widths = arg('widths', 'BENCH_WIDTHS', '32,64,128,256').split(',').map(Number);
  await initBackend('wasm', { wasmThreads: threads });

  const rows: Record<string, { kernelMs: number; forwardMs: number; kernelToForward: number; gatherOpMs: number; rowCopyMs: number }> = {};
  const total = { kernelMs: 0, forwardMs: 0, gatherOpMs: 0, rowCopyMs: 0 };
  for (const [size, c, o, k, s, times] of layers(widths)) {
    const out = Math.ceil(size / s);
    const x = tf.randomNormal([batch, size, size, c], 0, 1, 'float32', 1) as tf.Tensor4D;
    const dy = tf.randomNormal([batch, out, out, o], 0, 1, 'float32', 2) as tf.Tensor4D;
    const filter = tf.randomNormal([k, k, c, o], 0, 1, 'float32', 3) as tf.Tensor4D;
    const attrs = { strides: s, pad: 'same', dataFormat: 'NHWC', inputShape: [batch, size, size, c] } as unknown as tf.NamedAttrMap;
    // The kernel's filter rows, [k·k, O, C], and every tap (stride 1 gathers all of them once).
    const filterRows = tf.reshape(tf.transpose(filter, [0, 1, 3, 2]), [k * k, o, c]);
    const taps = Array.from({ length: k }, (_, i) => k - 1 - i);
    const idx = tf.tensor1d(
      taps.flatMap((a) => taps.map((b) => a * k + b)),
      'int32',
    );
    const kernelMs = await meanMs(iters, () => tf.engine().runKernel(tf.Conv2DBackpropInput, { dy, filter }, attrs) as tf.Tensor);
    const forwardMs = await meanMs(iters, () => tf.conv2d(x, filter, s, 'same'));
    const gatherOpMs = await meanMs(iters, () => tf.gather(filterRows, idx));
    const rowCopyMs = await meanMs(iters, () => gatherTaps(tapRows(filterRows), k, taps, taps));
    rows[`${size}x${size}x${c} ${k}x${k}/${s} → ${o} (x${times})`] = {
      kernelMs: roundTo(kernelMs, 1),
      forwardMs: roundTo(forwardMs, 1),
      kernelToForward: roundTo(kernelMs / forwardMs, 2),
      gatherOpMs: roundTo(gatherOpMs, 2),
      rowCopyMs: roundTo(rowCopyMs, 2),
    };
    total.kernelMs += times * kernelMs;
    total.forwardMs += times * forwardMs;
    total.gatherOpMs += times * gatherOpMs;
    total.rowCopyMs += times * rowCopyMs;
    tf.dispose([x, dy, filter, filterRows, idx]);
  }

  console.log(
    JSON.stringify({
      bench: 'backprop-input',
      backend: 'wasm',
      wasmThreads: threads,
      widths,
      batch,
      iters,
      machine: machine(),
      layers: rows,
      totalMs: {
        kernel: roundTo(total.kernelMs, 1),
        forward: roundTo(total.forwardMs, 1),
        kernelToForward: roundTo(total.kernelMs / total.forwardMs, 2),
        gatherOp: roundTo(total.gatherOpMs, 1),
        rowCopy: roundTo(total.rowCopyMs, 1),
        gatherOpToRowCopy: roundTo(total.gatherOpMs / total.rowCopyMs, 1),
      },
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
