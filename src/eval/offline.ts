/**
 * `likeness eval`: how good is a model's embedding on a labelled train/test split? The train split is
 * the bank, the test split the queries. Reports, for the model and for two baselines computed in the
 * same run (raw pixels; the same architecture with random weights): weighted k-NN (k=200 and k=20,
 * T=0.1), majority k-NN, recall@1/@10, precision@10, mAP@10, a linear probe, and the HNSW index's
 * recall against exact search over the model's train embeddings.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Dataset } from '../data/dataset';
import { Embedder } from '../embed/embedder';
import { DEFAULT_DECODE_LIMITS } from '../images/decode';
import { HnswIndex } from '../index/hnsw-index';
import { normalize } from '../index/vector-index';
import type { ModelManifest, TtaMode } from '../model/manifest';
import { outputTwin, readManifest, saveModelDir, withTta } from '../model/model-dir';
import { buildResNet } from '../model/resnet';
import type { BackendChoice, ConvKernelChoice } from '../runtime/backend';
import { withSeededRandom } from '../train/seeded-init';
import { annRecallSweep, AnnPoint } from './ann-recall';
import { classCount, knnClassify } from './knn';
import { linearProbe } from './linear-probe';
import { exactNeighbours } from './neighbours';
import { relevantCounter, retrievalMetrics } from './retrieval';

export interface OfflineEvalOptions {
  modelDir: string;
  train: Dataset;
  test: Dataset;
  k: number;
  temperature: number;
  baselines: boolean;
  probe: boolean;
  efs: number[];
  workers: number;
  backend: BackendChoice;
  /** The wasm backend's convolutions in the embedding workers (default 'auto'). */
  convKernels?: ConvKernelChoice;
  /** Measure this output of the network (e.g. 'projection') instead of the one the model serves. */
  output?: string;
  /** Test-time augmentation instead of the manifest's (undefined keeps it). */
  tta?: TtaMode;
  log?: (msg: string) => void;
}

export interface Metrics {
  dim: number;
  knn: { k: number; top1: number; top5: number; perClass: number[] };
  knn20: { top1: number; top5: number };
  majority: { top1: number };
  retrieval: { recallAt1: number; recallAt10: number; precisionAt10: number; mapAt10: number };
  linearProbe?: number;
  confusion: number[][];
  seconds: number;
}

export interface OfflineReport {
  model: string;
  /** The network output measured (the served one unless OfflineEvalOptions.output). */
  output: string;
  /** Test-time augmentation of the measured embedding. */
  tta: TtaMode;
  train: { name: string; count: number };
  test: { name: string; count: number };
  classes: string[];
  protocol: string;
  results: Record<string, Metrics>;
  annRecall: AnnPoint[];
  /** Test-set neighbours of the model (for the report's pictures): [test * 10] train indices. */
  neighbours?: Int32Array;
  /** The model's test embeddings [test * dim] (for the report's map). */
  testVectors?: Float32Array;
  dim?: number;
}

const BATCH = 1024;

/** Embeds every image of `ds` with the model in `modelDir`: [count * dim] unit rows. */
export async function embedDataset(
  ds: Dataset,
  modelDir: string,
  workers: number,
  backend: BackendChoice,
  tta?: TtaMode,
  convKernels?: ConvKernelChoice,
): Promise<{ vectors: Float32Array; dim: number; modelId: string }> {
  const embedder = await Embedder.open({ modelDir, workers, backend, convKernels, tta, batching: { maxBatch: 256, maxWaitMs: 1, maxQueue: 1 << 20 }, decode: DEFAULT_DECODE_LIMITS });
  try {
    const dim = embedder.dim;
    const per = ds.size * ds.size * ds.channels;
    const vectors = new Float32Array(ds.count * dim);
    for (let s = 0; s < ds.count; s += BATCH) {
      const idx = Array.from({ length: Math.min(BATCH, ds.count - s) }, (_, i) => s + i);
      const pixels = await ds.fetch(idx);
      const images = idx.map((_, i) => pixels.subarray(i * per, (i + 1) * per));
      (await embedder.embedMany(images)).forEach((v, i) => vectors.set(v, (s + i) * dim));
    }
    return { vectors, dim, modelId: embedder.modelId };
  } finally {
    await embedder.close();
  }
}

/** Raw pixels as vectors: normalised as the model's input, flattened, unit length. */
export async function pixelVectors(ds: Dataset, manifest: ModelManifest): Promise<{ vectors: Float32Array; dim: number }> {
  const { mean, std, channels } = manifest.input;
  const dim = ds.size * ds.size * ds.channels;
  const vectors = new Float32Array(ds.count * dim);
  for (let s = 0; s < ds.count; s += BATCH) {
    const n = Math.min(BATCH, ds.count - s);
    const pixels = await ds.fetch(Array.from({ length: n }, (_, i) => s + i));
    for (let i = 0; i < n; i++) {
      const row = Array.from(pixels.subarray(i * dim, (i + 1) * dim), (p, j) => (p / 255 - mean[j % channels]) / std[j % channels]);
      vectors.set(normalize(row), (s + i) * dim);
    }
  }
  return { vectors, dim };
}

/** The model's architecture with seeded random weights, saved as a temporary model directory. */
export async function randomTwin(modelDir: string, seed = 1): Promise<string> {
  const manifest = readManifest(modelDir);
  const model = withSeededRandom(seed, () => buildResNet({ ...manifest.encoder, inputSize: manifest.input.size, channels: manifest.input.channels }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-random-'));
  const dim = model.outputs[0].shape[1] as number;
  await saveModelDir(dir, model, { ...manifest, name: `${manifest.name}-random-init`, outputs: ['encoder'], embedding: { output: 'encoder', dim }, training: { method: 'none', seed }, quality: undefined });
  model.dispose();
  return dir;
}

/** Train and test embeddings of the model in `modelDir`. */
async function embedSplits(modelDir: string, opts: OfflineEvalOptions): Promise<Array<Awaited<ReturnType<typeof embedDataset>>>> {
  const embed = (ds: Dataset) => embedDataset(ds, modelDir, opts.workers, opts.backend, opts.tta, opts.convKernels);
  return [await embed(opts.train), await embed(opts.test)];
}

/** Every metric of one embedding: the train rows are the bank, the test rows the queries. */
export async function measure(
  train: Float32Array,
  test: Float32Array,
  dim: number,
  trainLabels: Int32Array,
  testLabels: Int32Array,
  numClasses: number,
  opts: Pick<OfflineEvalOptions, 'k' | 'temperature' | 'probe'>,
): Promise<{ metrics: Metrics; neighbours: Int32Array }> {
  const t0 = performance.now();
  const table = await exactNeighbours(train, test, dim, Math.max(opts.k, 20, 10));
  const knn = knnClassify(table, trainLabels, testLabels, numClasses, { k: opts.k, temperature: opts.temperature, vote: 'weighted' });
  const knn20 = knnClassify(table, trainLabels, testLabels, numClasses, { k: 20, temperature: opts.temperature, vote: 'weighted' });
  const majority = knnClassify(table, trainLabels, testLabels, numClasses, { k: opts.k, temperature: opts.temperature, vote: 'majority' });
  const relevant = relevantCounter(trainLabels, testLabels, false);
  const r1 = retrievalMetrics(table, trainLabels, testLabels, 1, relevant);
  const r10 = retrievalMetrics(table, trainLabels, testLabels, 10, relevant);
  const probe = opts.probe ? await linearProbe(train, trainLabels, test, testLabels, dim, numClasses) : undefined;
  const neighbours = new Int32Array(table.queries * 10);
  for (let q = 0; q < table.queries; q++) neighbours.set(table.indices.subarray(q * table.k, q * table.k + 10), q * 10);
  return {
    metrics: {
      dim,
      knn: { k: knn.k, top1: knn.top1, top5: knn.top5, perClass: knn.perClass },
      knn20: { top1: knn20.top1, top5: knn20.top5 },
      majority: { top1: majority.top1 },
      retrieval: { recallAt1: r1.recallAtK, recallAt10: r10.recallAtK, precisionAt10: r10.precisionAtK, mapAt10: r10.mapAtK },
      ...(probe === undefined ? {} : { linearProbe: probe }),
      confusion: knn.confusion,
      seconds: (performance.now() - t0) / 1000,
    },
    neighbours,
  };
}

/** The labels of both splits, every image labelled, and how many classes they span. */
export function splitLabels(train: Dataset, test: Dataset): { trainLabels: Int32Array; testLabels: Int32Array; numClasses: number } {
  if (!train.labels || !test.labels) throw new Error('evaluation needs labelled train and test data');
  const trainLabels = train.labels;
  const testLabels = test.labels;
  if (trainLabels.some((l) => l < 0) || testLabels.some((l) => l < 0)) throw new Error('every evaluation image needs a label (a class folder, or a label column in a manifest)');
  if (train.count < 10) throw new RangeError(`the bank has ${train.count} images; recall@10 and mAP@10 need at least 10`);
  return { trainLabels, testLabels, numClasses: classCount(trainLabels, testLabels) };
}

export async function evaluateOffline(opts: OfflineEvalOptions): Promise<OfflineReport> {
  const { train, test } = opts;
  const { trainLabels, testLabels, numClasses } = splitLabels(train, test);
  const log = opts.log ?? (() => undefined);
  const manifest = readManifest(opts.modelDir);
  const output = opts.output ?? manifest.embedding.output;
  const results: Record<string, Metrics> = {};

  log(`embedding train and test splits (output: ${output})`);
  const served = output === manifest.embedding.output ? opts.modelDir : await outputTwin(opts.modelDir, output);
  const [a, b] = await embedSplits(served, opts).finally(() => served !== opts.modelDir && fs.rmSync(served, { recursive: true, force: true }));
  log('measuring the model');
  const model = await measure(a.vectors, b.vectors, a.dim, trainLabels, testLabels, numClasses, opts);
  results.model = model.metrics;

  log('measuring the index (HNSW recall against exact search)');
  const hnsw = HnswIndex.create(a.dim, { initialCapacity: train.count });
  for (let i = 0; i < train.count; i++) hnsw.add(i, a.vectors.subarray(i * a.dim, (i + 1) * a.dim));
  const annQueries = Array.from({ length: Math.min(1000, test.count) }, (_, i) => b.vectors.slice(i * a.dim, (i + 1) * a.dim));
  const truth = await exactNeighbours(a.vectors, b.vectors.subarray(0, annQueries.length * a.dim), a.dim, 10);
  const annRecall = annRecallSweep(hnsw, annQueries, { table: truth }, Math.min(10, truth.k), opts.efs);

  if (opts.baselines) {
    log('baseline: raw pixels');
    const [pa, pb] = [await pixelVectors(train, manifest), await pixelVectors(test, manifest)];
    results.rawPixels = (await measure(pa.vectors, pb.vectors, pa.dim, trainLabels, testLabels, numClasses, opts)).metrics;
    log('baseline: the same encoder with random weights');
    const twin = await randomTwin(opts.modelDir);
    const [ra, rb] = await embedSplits(twin, opts).finally(() => fs.rmSync(twin, { recursive: true, force: true }));
    results.randomWeights = (await measure(ra.vectors, rb.vectors, ra.dim, trainLabels, testLabels, numClasses, opts)).metrics;
  }
  return {
    model: a.modelId,
    output,
    tta: withTta(manifest, opts.tta).embedding.tta ?? 'none',
    train: { name: train.name, count: train.count },
    test: { name: test.name, count: test.count },
    classes: train.classes ?? Array.from({ length: numClasses }, (_, i) => String(i)),
    protocol: `bank = train split, queries = test split; weighted k-NN (InstDisc) k=${opts.k}, T=${opts.temperature}; cosine similarity on unit-length embeddings`,
    results,
    annRecall,
    neighbours: model.neighbours,
    testVectors: b.vectors,
    dim: a.dim,
  };
}
