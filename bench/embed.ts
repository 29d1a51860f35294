/**
 * Embedding throughput: forward pass alone vs end-to-end (decode + embed), with inference in the main
 * thread (1 core) and in a worker pool (all cores). Prints one JSON line.
 *
 *   npx tsx bench/embed.ts [--model DIR] [--images N] [--batch B] [--conv-kernels auto|onednn|wasm]
 *   (env: BENCH_MODEL, BENCH_IMAGES, BENCH_BATCH, BENCH_CONV_KERNELS)
 * Run it once with each --conv-kernels value to compare oneDNN's convolutions with wasm's.
 */
import * as os from 'node:os';
import { Embedder } from '../src/embed/embedder';
import { LocalEngine } from '../src/embed/engine';
import { DEFAULT_DECODE_LIMITS } from '../src/images/decode';
import { ConvKernelChoice, initBackend } from '../src/runtime/backend';
import { fmnistFixtures, TEST_MODEL } from '../test/helpers';
import { arg } from './args';

async function main(): Promise<void> {
  const model = arg('model', 'BENCH_MODEL', TEST_MODEL);
  const images = Number(arg('images', 'BENCH_IMAGES', '2048'));
  const batch = Number(arg('batch', 'BENCH_BATCH', '64'));
  const cores = os.availableParallelism();
  const convKernels = arg('conv-kernels', 'BENCH_CONV_KERNELS', 'auto') as ConvKernelChoice;
  const backend = await initBackend('auto', { convKernels });
  const fixtures = fmnistFixtures();
  const bytes = Array.from({ length: images }, (_, i) => fixtures[i % fixtures.length].bytes);

  const open = (workers: number) =>
    Embedder.open({ modelDir: model, workers, backend: backend.name, convKernels, batching: { maxBatch: batch, maxWaitMs: 2, maxQueue: images }, decode: DEFAULT_DECODE_LIMITS });

  const rate = async (fn: () => Promise<unknown>): Promise<number> => {
    await fn(); // warm-up (JIT, XNNPACK packing)
    const t = performance.now();
    await fn();
    return images / ((performance.now() - t) / 1000);
  };

  const results: Record<string, number> = {};
  const local = await open(0);
  const pixels = await Promise.all(bytes.map((b) => local.decode(b)));
  results.decodeOnly = await rate(() => Promise.all(bytes.map((b) => local.decode(b))));
  // Forward pass alone: the engine with pre-decoded, pre-joined pixels.
  const engine = await LocalEngine.open(model);
  const per = pixels[0].length;
  const joined = new Uint8Array(per * batch);
  pixels.slice(0, batch).forEach((p, i) => joined.set(p, i * per));
  results.forward1 = await rate(async () => {
    for (let i = 0; i < images; i += batch) await engine.run(joined, batch);
  });
  await engine.close();
  results.endToEnd1 = await rate(() => Promise.all(bytes.map((b) => local.embedImage(b))));
  await local.close();

  const pool = await open(cores);
  results.forwardAll = await rate(() => pool.embedMany(pixels));
  results.endToEndAll = await rate(() => Promise.all(bytes.map((b) => pool.embedImage(b))));
  await pool.close();

  const round = (x: number) => Math.round(x);
  console.log(
    JSON.stringify({
      bench: 'embed',
      model,
      backend: backend.name,
      convolutions: backend.convolutions,
      cores,
      images,
      batch,
      decodeOnlyImgPerS: round(results.decodeOnly),
      forwardImgPerS_1worker: round(results.forward1),
      endToEndImgPerS_1worker: round(results.endToEnd1),
      forwardImgPerS_allCores: round(results.forwardAll),
      endToEndImgPerS_allCores: round(results.endToEndAll),
      speedupAllCoresVs1: +(results.endToEndAll / results.endToEnd1).toFixed(2),
      endToEndOverForward_1worker: +(results.endToEnd1 / results.forward1).toFixed(2),
    }),
  );
}

void main();
