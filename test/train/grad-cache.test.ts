/**
 * Gradient caching (src/train/grad-cache.ts) on real Fashion-MNIST images, cpu backend, tiny encoder:
 * the same loss, gradients and batch-norm averages as a step that runs the same chunks on the tape,
 * the plain step's when one chunk holds the batch, less peak memory, and the trainer's checks.
 */
import * as tf from '@tensorflow/tfjs';
import { ArrayDataset } from '../../src/data/dataset';
import { openIdx } from '../../src/data/idx-dataset';
import { buildResNet, resnetConfig } from '../../src/model/resnet';
import { chunkRanges, gradCacheStep } from '../../src/train/grad-cache';
import { ContrastiveMethod, TrainBatch } from '../../src/train/method';
import { methodClass } from '../../src/train/registry';
import { train } from '../../src/train/trainer';
import { SMALL_AUGMENT, tempDir, TINY_ENCODER, TINY_HEAD, useCpu } from './helpers';

let data: ArrayDataset;
beforeAll(async () => {
  await useCpu();
  data = await openIdx('idx:fashion-mnist', { size: 8, channels: 1 }, 32);
});

function build(method: string): ContrastiveMethod {
  const enc = resnetConfig(TINY_ENCODER, 8, 1);
  const cls = methodClass(method);
  return new cls(buildResNet(enc), cls.configure(TINY_HEAD) as never, { buildEncoder: () => buildResNet(enc), datasetSize: 32, seed: 1 });
}

/** Two views of the first n images (the second one mirrored), with their labels. */
function batchOf(n: number): TrainBatch {
  const pixels = Float32Array.from(data.pixels.subarray(0, n * 64), (v) => v / 255 - 0.5);
  const x = tf.tensor4d(pixels, [n, 8, 8, 1]);
  return { views: [x, tf.reverse(x, 2) as tf.Tensor4D], indices: Int32Array.from({ length: n }, (_, i) => i), labels: data.labels!.slice(0, n), epoch: 0, step: 0 };
}

const movingOf = (m: ContrastiveMethod): number[][] => m.network.nonTrainableWeights.map((w) => Array.from(w.read().dataSync()));

/** Loss and gradients with every chunk of every view on the tape at once: what caching must equal. */
function chunkedOnTape(m: ContrastiveMethod, batch: TrainBatch, chunk: number, vars: tf.Variable[]) {
  const ranges = chunkRanges(batch.indices.length, chunk);
  return tf.variableGrads(() => {
    const zs = batch.views.map((v) => tf.concat(ranges.map(([s, e]) => m.forward(tf.slice(v, s, e - s)).z)) as tf.Tensor2D);
    return m.lossFromProjections!(zs, batch);
  }, vars);
}

function expectClose(a: tf.NamedTensorMap, b: tf.NamedTensorMap): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const name of Object.keys(a)) {
    const x = a[name].dataSync();
    const y = b[name].dataSync();
    const scale = Math.max(1e-6, ...Array.from(y, Math.abs));
    const worst = Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i])));
    expect(worst / scale).toBeLessThan(1e-4);
  }
}

describe.each(['supcon', 'simclr'])('gradient caching with %s', (method) => {
  it('gives the loss, gradients and batch-norm averages of the same chunks run on the tape', () => {
    const m = build(method);
    const vars = m.trainableVariables();
    const batch = batchOf(12);
    const start = movingOf(m);
    const reference = chunkedOnTape(m, batch, 4, vars);
    const referenceMoving = movingOf(m);
    m.network.nonTrainableWeights.forEach((w, i) => w.write(tf.tensor(start[i], w.shape as number[])));

    const before = tf.memory().numTensors;
    const cached = gradCacheStep(m, batch, vars, 4);
    expect(cached.value.dataSync()[0]).toBeCloseTo(reference.value.dataSync()[0], 5);
    expectClose(cached.grads, reference.grads);
    // Moving averages moved once per chunk, as on the tape, not twice.
    movingOf(m).forEach((w, i) => w.forEach((v, j) => expect(v).toBeCloseTo(referenceMoving[i][j], 6)));
    expect(movingOf(m)).not.toEqual(start);
    tf.dispose([cached.value, ...Object.values(cached.grads)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([reference.value, ...Object.values(reference.grads), ...batch.views]);
  });

  it('is the plain step when one chunk holds the batch', () => {
    const m = build(method);
    const vars = m.trainableVariables();
    const batch = batchOf(8);
    const start = movingOf(m);
    const plain = tf.variableGrads(() => m.computeLoss(batch), vars);
    m.network.nonTrainableWeights.forEach((w, i) => w.write(tf.tensor(start[i], w.shape as number[])));
    const cached = gradCacheStep(m, batch, vars, 8);
    expect(cached.value.dataSync()[0]).toBeCloseTo(plain.value.dataSync()[0], 5);
    expectClose(cached.grads, plain.grads);
    tf.dispose([cached.value, plain.value, ...Object.values(cached.grads), ...Object.values(plain.grads), ...batch.views]);
  });
});

describe('gradient caching', () => {
  it('needs less memory at its peak than the plain step', async () => {
    const m = build('supcon');
    const vars = m.trainableVariables();
    const batch = batchOf(32);
    const peak = async (f: () => tf.TensorContainer) => (await tf.profile(() => tf.dispose(f()))).peakBytes;
    const plain = await peak(() => tf.variableGrads(() => m.computeLoss(batch), vars) as unknown as tf.TensorContainer);
    const cached = await peak(() => gradCacheStep(m, batch, vars, 4) as unknown as tf.TensorContainer);
    expect(cached).toBeLessThan(0.6 * plain);
    tf.dispose(batch.views);
  });

  it('splits rows into the fewest chunks of at most n, of near-equal sizes, and refuses a chunk below one image', () => {
    expect(chunkRanges(10, 4)).toEqual([
      [0, 3],
      [3, 6],
      [6, 10],
    ]);
    // 65 in chunks of 32: not 32 + 32 + 1, whose last image would be normalised alone.
    expect(chunkRanges(65, 32).map(([s, e]) => e - s)).toEqual([21, 22, 22]);
    expect(chunkRanges(3, 8)).toEqual([[0, 3]]);
    expect(chunkRanges(64, 32)).toEqual([
      [0, 32],
      [32, 64],
    ]);
    expect(() => chunkRanges(3, 0)).toThrow(/grad-cache chunk must be an integer >= 1, got 0/);
  });

  it('is refused for methods with state of their own and for chunks without batch statistics, before any step', async () => {
    const base = { data, outDir: tempDir('gc'), epochs: 1, batchSize: 8, encoder: TINY_ENCODER, augment: SMALL_AUGMENT, knn: false as const, progress: 'none' as const };
    await expect(train({ ...base, method: 'moco', methodConfig: { ...TINY_HEAD, queueSize: 16 }, gradCacheChunk: 4 })).rejects.toThrow(/moco cannot train with gradient caching .* simclr and supcon/);
    await expect(train({ ...base, method: 'supcon', methodConfig: TINY_HEAD, gradCacheChunk: 1 })).rejects.toThrow(/grad-cache chunk must be an integer >= 2, got 1/);
  });

  it('trains a SupCon epoch through the shared loop, records the chunk, and lets a resumed run change it', async () => {
    const out = tempDir('gc-train');
    const common = { data, outDir: out, method: 'supcon', methodConfig: TINY_HEAD, batchSize: 16, encoder: TINY_ENCODER, augment: SMALL_AUGMENT, knn: false as const, progress: 'none' as const };
    const first = await train({ ...common, epochs: 1, gradCacheChunk: 4 });
    expect(first.history).toHaveLength(1);
    expect(Number.isFinite(first.history[0].loss)).toBe(true);
    expect(first.manifest.training).toMatchObject({ gradCacheChunk: 4 });
    // A run that ran out of memory may go on in chunks, and one in chunks without them.
    const resumed = await train({ ...common, epochs: 2, resume: true });
    expect(resumed.history).toHaveLength(2);
    expect(resumed.manifest.training?.gradCacheChunk).toBeUndefined();
  });
});
