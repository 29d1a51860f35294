/**
 * Training throughput of every method at the shipped model's configuration: resnet-mini with stage
 * widths 16/32/64 at 28x28x1, batch 128, Adam, SimCLR's small-image augmentations, on wasm with the
 * training kernels, one training thread. Each method trains `--steps` steps on the first Fashion-MNIST
 * training images (the first step, which builds the network's kernels, is included, as in a real
 * epoch). Training images/s: each image gives 2 views (memory bank: 1). Prints one JSON line.
 *
 *   npx tsx bench/train-methods.ts [--steps 6] [--batch 128] [--methods simclr,moco,membank,swav,supcon]
 *                                  (a method may carry settings: moco:shuffleGroups=1)
 *                                  [--wasm-threads 1]   (threaded XNNPACK build when > 1, as likeness train --threads)
 *                                  [--conv-kernels auto|onednn|wasm]   (as likeness train --conv-kernels)
 */
import { openDataset } from '../src/data/open';
import { ConvKernelChoice, initBackend } from '../src/runtime/backend';
import { train } from '../src/train/trainer';
import { tempDir } from '../test/helpers';
import { arg } from './args';
import { machine } from './measure';

async function main(): Promise<void> {
  const steps = Number(arg('steps', 'BENCH_STEPS', '6'));
  const batch = Number(arg('batch', 'BENCH_BATCH', '128'));
  const methods = arg('methods', 'BENCH_METHODS', 'simclr,moco,membank,swav,supcon').split(',');
  const threads = Number(arg('wasm-threads', 'BENCH_WASM_THREADS', '1'));
  const convKernels = arg('conv-kernels', 'BENCH_CONV_KERNELS', 'auto') as ConvKernelChoice;
  const backend = await initBackend('wasm', { wasmThreads: threads, convKernels });
  const data = await openDataset('idx:fashion-mnist:train', { size: 28, channels: 1, limit: steps * batch });
  const imagesPerSec: Record<string, number> = {};
  for (const spec of methods) {
    const [method, ...settings] = spec.split(':');
    const methodConfig = Object.fromEntries(settings.map((kv) => kv.split('=')).map(([k, v]) => [k, Number.isNaN(Number(v)) ? v : Number(v)]));
    const t = performance.now();
    await train({
      method,
      methodConfig,
      data,
      outDir: tempDir(`likeness-bench-${method}-`),
      epochs: 1,
      batchSize: batch,
      encoder: { arch: 'resnet-mini', widths: [16, 32, 64] },
      mean: [0.286],
      std: [0.353],
      augment: { cropScale: [0.3, 1], jitterStrength: 0.5, blurProb: 0 },
      knn: false,
      progress: 'none',
      seed: 1,
    });
    imagesPerSec[spec] = Math.round(((steps * batch) / ((performance.now() - t) / 1000)) * 10) / 10;
  }
  console.log(
    JSON.stringify({
      bench: 'train-methods',
      model: 'resnet-mini 16/32/64, 28x28x1, Adam',
      backend: backend.name,
      wasmThreads: backend.threads,
      convolutions: backend.convolutions,
      machine: machine(),
      batch,
      steps,
      imagesPerSec,
    }),
  );
}

void main();
