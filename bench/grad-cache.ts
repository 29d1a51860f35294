/**
 * Gradient caching (src/train/grad-cache.ts) against the plain step, in one run on wasm: SupCon
 * steps of one batch (2 views of random images, random labels), seconds per step (median) and the
 * largest number of tensor bytes alive during a step (tf.profile's peakBytes: the activations a
 * step keeps for its backward pass, which is what fills the wasm heap). Prints one JSON line.
 *
 *   npx tsx bench/grad-cache.ts [--batch 64] [--chunk 16] [--iters 3] [--wasm-threads 2]
 *                               [--encoder resnet18] [--widths 32,64,128,256]
 */
import * as tf from '@tensorflow/tfjs';
import { buildResNet, resnetConfig, StemKind } from '../src/model/resnet';
import { initBackend } from '../src/runtime/backend';
import { gradCacheStep } from '../src/train/grad-cache';
import { TrainBatch } from '../src/train/method';
import { methodClass } from '../src/train/registry';
import { arg } from './args';
import { machine, median, roundTo } from './measure';

async function main(): Promise<void> {
  const batch = Number(arg('batch', 'BENCH_BATCH', '64'));
  const chunk = Number(arg('chunk', 'BENCH_CHUNK', '16'));
  const iters = Number(arg('iters', 'BENCH_ITERS', '3'));
  const threads = Number(arg('wasm-threads', 'BENCH_WASM_THREADS', '2'));
  const arch = arg('encoder', 'BENCH_ENCODER', 'resnet18');
  const widths = arg('widths', 'BENCH_WIDTHS', '32,64,128,256').split(',').map(Number);
  await initBackend('wasm', { wasmThreads: threads });

  const enc = resnetConfig({ arch, widths, stem: 'small' as StemKind }, 28, 1);
  const cls = methodClass('supcon');
  const method = new cls(buildResNet(enc), cls.configure({}) as never, { buildEncoder: () => buildResNet(enc), datasetSize: batch, seed: 1 });
  const vars = method.trainableVariables();
  const views = [0, 1].map((s) => tf.randomUniform([batch, 28, 28, 1], -1, 1, 'float32', s) as tf.Tensor4D);
  const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
  const step: TrainBatch = { views, indices: Int32Array.from({ length: batch }, (_, i) => i), labels, epoch: 0, step: 0 };

  const plain = () => tf.variableGrads(() => method.computeLoss(step), vars);
  const cached = () => gradCacheStep(method, step, vars, chunk);
  const run = (f: () => { value: tf.Scalar; grads: tf.NamedTensorMap }): number => {
    const start = performance.now();
    const { value, grads } = f();
    value.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
    return (performance.now() - start) / 1000;
  };
  const peakOf = async (f: () => { value: tf.Scalar; grads: tf.NamedTensorMap }): Promise<number> => (await tf.profile(() => void run(f))).peakBytes;

  // Warm-up (XNNPACK operators), then interleaved so that load from other processes hits both alike.
  run(plain);
  run(cached);
  const seconds = { plain: [] as number[], cached: [] as number[] };
  for (let i = 0; i < iters; i++) {
    seconds.plain.push(run(plain));
    seconds.cached.push(run(cached));
  }
  const peak = { plain: await peakOf(plain), cached: await peakOf(cached) };
  const mib = (b: number): number => roundTo(b / 1024 ** 2, 1);
  console.log(
    JSON.stringify({
      bench: 'grad-cache',
      backend: 'wasm',
      wasmThreads: threads,
      encoder: `${arch} widths ${widths.join('/')}, small stem, 28x28x1`,
      method: 'supcon',
      batch,
      views: 2,
      chunk,
      iters,
      machine: machine(),
      secondsPerStep: { plain: roundTo(median(seconds.plain), 2), cached: roundTo(median(seconds.cached), 2) },
      cachedToPlainTime: roundTo(median(seconds.cached) / median(seconds.plain), 2),
      peakTensorMiB: { plain: mib(peak.plain), cached: mib(peak.cached) },
      cachedToPlainPeak: roundTo(peak.cached / peak.plain, 2),
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
