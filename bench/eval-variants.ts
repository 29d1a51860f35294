/**
 * Choosing what a model serves: `likeness eval --variants` (every output, with and without flip
 * averaging, from one pass of each image and its mirror) against one evaluation per variant, on the
 * same held-out split in one process (in-thread embedding on both sides, the same backend threads).
 * Prints one JSON line; the k-NN figures of both ways must agree.
 *
 *   npx tsx bench/eval-variants.ts [--model models/fmnist-supcon-resnet18-more] [--limit 6000] [--holdout 1000] [--threads 2]
 */
import * as fs from 'node:fs';
import { holdOut } from '../src/data/dataset';
import { openDataset } from '../src/data/open';
import { evaluateOffline } from '../src/eval/offline';
import { evaluateVariants } from '../src/eval/variants';
import { outputTwin, readManifest } from '../src/model/model-dir';
import { initBackend } from '../src/runtime/backend';
import { arg } from './args';

async function main(): Promise<void> {
  const modelDir = arg('model', 'BENCH_MODEL', 'models/fmnist-supcon-resnet18-more');
  const limit = Number(arg('limit', 'BENCH_LIMIT', '6000'));
  const holdout = Number(arg('holdout', 'BENCH_HOLDOUT', '1000'));
  const threads = Number(arg('threads', 'BENCH_THREADS', '2'));
  const backend = await initBackend('wasm', { wasmThreads: threads });
  const manifest = readManifest(modelDir);
  const { train, test } = holdOut(await openDataset('idx:fashion-mnist:train', { size: manifest.input.size, channels: manifest.input.channels, limit }), holdout);
  const common = { train, test, k: 200, temperature: 0.1, probe: false };

  let t0 = performance.now();
  const variants = await evaluateVariants({ modelDir, ...common });
  const variantsSeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  const separate: number[] = [];
  for (const v of variants.variants) {
    const dir = v.output === manifest.embedding.output ? modelDir : await outputTwin(modelDir, v.output);
    try {
      const r = await evaluateOffline({ modelDir: dir, ...common, baselines: false, efs: [10], workers: 0, backend: 'wasm', tta: v.tta });
      separate.push(r.results.model.knn.top1);
    } finally {
      if (dir !== modelDir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const separateSeconds = (performance.now() - t0) / 1000;
  console.log(
    JSON.stringify({
      bench: 'eval-variants',
      backend: `${backend.name}/${backend.threads}`,
      model: modelDir,
      bank: train.count,
      queries: test.count,
      variants: variants.variants.map((v) => `${v.output}${v.tta === 'hflip' ? '+hflip' : ''}`),
      top1: variants.variants.map((v) => +v.knn.top1.toFixed(4)),
      sameTop1AsSeparate: variants.variants.every((v, i) => v.knn.top1 === separate[i]),
      variantsSeconds: +variantsSeconds.toFixed(1),
      separateSeconds: +separateSeconds.toFixed(1),
      speedup: +(separateSeconds / variantsSeconds).toFixed(2),
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
