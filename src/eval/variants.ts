/**
 * `likeness eval --variants`: every output of a network (encoder, projection, whitened, ...), each with
 * and without flip averaging, measured from one pass of each image and one of its mirror image. It is
 * how to choose what a model serves: four separate evaluations of a two-output model (each output, with
 * and without `--tta hflip`) run every image through the network six times; this runs it twice.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/dataset';
import { flipAverage, unitRows, withMirrors } from '../embed/engine';
import { pixelsToTensor } from '../images/preprocess';
import type { TtaMode } from '../model/manifest';
import { LoadedModel, loadModelDir, readManifest } from '../model/model-dir';
import { measure, Metrics, OfflineEvalOptions, splitLabels } from './offline';

export interface VariantVectors {
  output: string;
  tta: TtaMode;
  dim: number;
  /** [count * dim] unit rows. */
  vectors: Float32Array;
}

export type VariantMetrics = Metrics & { output: string; tta: TtaMode };

export interface VariantsReport {
  /** The model's id as it serves, less flip averaging. */
  model: string;
  /** What the model serves now, by its manifest. */
  served: { output: string; tta: TtaMode };
  train: { name: string; count: number };
  test: { name: string; count: number };
  classes: string[];
  protocol: string;
  /** Each output, first without then with flip averaging. */
  variants: VariantMetrics[];
  /** The variant with the highest weighted k-NN top-1 (the first of equals). */
  best: { output: string; tta: TtaMode; top1: number };
}

export type VariantsOptions = Pick<OfflineEvalOptions, 'modelDir' | 'train' | 'test' | 'k' | 'temperature' | 'probe' | 'log'>;

const BATCH = 128;
const LOG_EVERY = 10_000;

/** Every output of `loaded`'s network for every image of `ds`, single-pass and flip-averaged. */
export async function embedVariants(ds: Dataset, loaded: Pick<LoadedModel, 'model' | 'manifest'>, log: (msg: string) => void = () => undefined): Promise<VariantVectors[]> {
  const { model, manifest } = loaded;
  const dims = model.outputs.map((o) => o.shape[o.shape.length - 1] as number);
  const variants = manifest.outputs.flatMap((output, i) =>
    (['none', 'hflip'] as const).map((tta) => ({ output: output as string, tta, dim: dims[i], vectors: new Float32Array(ds.count * dims[i]) })),
  );
  const per = ds.size * ds.size * ds.channels;
  const started = performance.now();
  for (let s = 0; s < ds.count; s += BATCH) {
    const n = Math.min(BATCH, ds.count - s);
    const pixels = await ds.fetch(Array.from({ length: n }, (_, i) => s + i));
    if (pixels.length !== n * per) throw new RangeError(`${ds.name}: fetch returned ${pixels.length} bytes for ${n} images`);
    const rows = tf.tidy(() => {
      const out = model.predict(withMirrors(pixelsToTensor(pixels, n, manifest.input))); // [2N, ...] per output
      return (Array.isArray(out) ? out : [out]).flatMap((o) => {
        const both = unitRows(o as tf.Tensor2D); // [2N, D]: the images, then their mirrors
        return [both.slice(0, n), flipAverage(both)];
      });
    });
    for (let v = 0; v < variants.length; v++) {
      variants[v].vectors.set(await rows[v].data(), s * variants[v].dim);
      rows[v].dispose();
    }
    const done = s + n;
    if (Math.floor(done / LOG_EVERY) > Math.floor(s / LOG_EVERY) || done === ds.count) {
      log(`${ds.name}: ${done}/${ds.count} images (${(done / ((performance.now() - started) / 1000)).toFixed(1)}/s)`);
    }
  }
  return variants;
}

export async function evaluateVariants(opts: VariantsOptions): Promise<VariantsReport> {
  const { train, test } = opts;
  const { trainLabels, testLabels, numClasses } = splitLabels(train, test);
  const log = opts.log ?? (() => undefined);
  const loaded = await loadModelDir(opts.modelDir, 'none');
  let bank: VariantVectors[];
  let queries: VariantVectors[];
  try {
    log(`embedding both splits: outputs ${loaded.manifest.outputs.join(', ')}, each image and its mirror image`);
    bank = await embedVariants(train, loaded, log);
    queries = await embedVariants(test, loaded, log);
  } finally {
    loaded.model.dispose();
  }
  const variants: VariantMetrics[] = [];
  for (let v = 0; v < bank.length; v++) {
    const { output, tta, dim } = bank[v];
    const { metrics } = await measure(bank[v].vectors, queries[v].vectors, dim, trainLabels, testLabels, numClasses, opts);
    variants.push({ output, tta, ...metrics });
    const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
    log(`${output}${tta === 'hflip' ? ' + hflip' : ''}: k-NN top-1 ${pct(metrics.knn.top1)} (k=${opts.k}), ${pct(metrics.knn20.top1)} (k=20); mAP@10 ${pct(metrics.retrieval.mapAt10)}`);
  }
  const best = variants.reduce((a, b) => (b.knn.top1 > a.knn.top1 ? b : a));
  log(`best: ${best.output}${best.tta === 'hflip' ? ' + hflip' : ''}`);
  const served = readManifest(opts.modelDir).embedding; // loaded's manifest has tta 'none' forced
  return {
    model: loaded.id,
    served: { output: served.output, tta: served.tta ?? 'none' },
    train: { name: train.name, count: train.count },
    test: { name: test.name, count: test.count },
    classes: train.classes ?? Array.from({ length: numClasses }, (_, i) => String(i)),
    protocol: `bank = train split, queries = test split; weighted k-NN (InstDisc) k=${opts.k}, T=${opts.temperature}; cosine similarity on unit-length embeddings; hflip: the normalised mean of an image's and its mirror image's unit vectors`,
    variants,
    best: { output: best.output, tta: best.tta, top1: best.knn.top1 },
  };
}
