/**
 * Every method trains for one short epoch on real Fashion-MNIST images (cpu backend, tiny encoder),
 * writes a checkpoint with its state, and leaves a loadable model directory whose manifest records
 * the run. Also: configuration checks and tensor hygiene.
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArrayDataset } from '../../src/data/dataset';
import { openIdx } from '../../src/data/idx-dataset';
import { loadModelDir } from '../../src/model/model-dir';
import { CHECKPOINT_DIR, TRAINER_JSON } from '../../src/train/checkpoint';
import { MemoryBankMethod } from '../../src/train/membank';
import { shuffledKeys, shuffleGroupsOf } from '../../src/train/moco';
import { METHOD_NAMES, methodClass } from '../../src/train/registry';
import { buildResNet, resnetConfig } from '../../src/model/resnet';
import { train, TRAIN_LOG } from '../../src/train/trainer';
import { SMALL_AUGMENT, tempDir, TINY_ENCODER, TINY_HEAD, useCpu } from './helpers';

let data: ArrayDataset;
beforeAll(async () => {
  await useCpu();
  data = await openIdx('idx:fashion-mnist', { size: 8, channels: 1 }, 32);
});

const extra: Record<string, Record<string, unknown>> = {
  moco: { queueSize: 48 },
  membank: { negatives: 16 },
  swav: { prototypes: 10, freezePrototypesEpochs: 0 },
};
const stateKeys: Record<string, string[]> = {
  moco: ['moco/queue', 'moco/key/0'],
  membank: ['membank/bank'],
  swav: ['swav/prototypes'],
};

describe.each(METHOD_NAMES)('%s', (method) => {
  it('trains one epoch, checkpoints its state and saves a model directory', async () => {
    const out = tempDir(method);
    const before = tf.memory().numTensors;
    const result = await train({
      method,
      data,
      outDir: out,
      epochs: 1,
      batchSize: 16,
      optimizer: method === 'simclr' ? 'lars' : 'adam',
      encoder: TINY_ENCODER,
      methodConfig: { ...TINY_HEAD, ...extra[method] },
      augment: SMALL_AUGMENT,
      knn: false,
      progress: 'none',
      logEvery: 1,
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(result.complete).toBe(true);
    expect(Number.isFinite(result.history[0].loss)).toBe(true);
    const trainer = JSON.parse(fs.readFileSync(path.join(out, CHECKPOINT_DIR, TRAINER_JSON), 'utf8'));
    expect(trainer.epoch).toBe(1);
    const names = trainer.tensors.map((t: { name: string }) => t.name);
    for (const k of stateKeys[method] ?? []) expect(names).toContain(k);
    const loaded = await loadModelDir(out);
    try {
      expect(loaded.manifest.outputs).toEqual(['encoder', 'projection']);
      expect(loaded.manifest.embedding).toEqual({ output: 'encoder', dim: 16 });
      expect(loaded.manifest.training).toMatchObject({ method, epochs: 1, batchSize: 16, dataset: { images: 32 } });
      expect(loaded.manifest.training?.machine).toMatchObject({ backend: 'cpu' });
      const [h, z] = loaded.model.predict(tf.zeros([2, 8, 8, 1])) as tf.Tensor[];
      expect(h.shape).toEqual([2, 16]);
      expect(z.shape).toEqual([2, 16]);
    } finally {
      loaded.model.dispose();
    }
    const log = fs.readFileSync(path.join(out, TRAIN_LOG), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.filter((r) => r.type === 'step')).toHaveLength(2);
    expect(log.at(-1)).toMatchObject({ type: 'done' });
  });
});

describe('method configuration', () => {
  it('applies paper defaults and rejects bad values quoting them', () => {
    expect(methodClass('simclr').configure({}).temperature).toBe(0.5);
    expect(methodClass('moco').configure({})).toMatchObject({ temperature: 0.2, momentum: 0.99 });
    expect(methodClass('supcon').configure({}).temperature).toBe(0.1);
    expect(methodClass('membank').configure({})).toMatchObject({ temperature: 0.07, views: 1 });
    expect(() => methodClass('simclr').configure({ temperature: -1 })).toThrow(/got -1/);
    expect(() => methodClass('moco').configure({ momentum: 1 })).toThrow(/got 1/);
    expect(() => methodClass('swav').configure({ views: 1 })).toThrow(/at least 2 views/);
    expect(() => methodClass('byol')).toThrow(/unknown method 'byol'/);
  });

  it('refuses supcon without labels, a batch larger than the data and a zero std', async () => {
    const unlabelled = new ArrayDataset('u', data.pixels, 8, 1);
    await expect(train({ method: 'supcon', data: unlabelled, outDir: tempDir('x'), epochs: 1, batchSize: 8, knn: false, progress: 'none' })).rejects.toThrow(/needs labels/);
    await expect(train({ method: 'simclr', data, outDir: tempDir('x'), epochs: 1, batchSize: 64, knn: false, progress: 'none' })).rejects.toThrow(/fewer than one batch/);
    await expect(train({ method: 'simclr', data, outDir: tempDir('x'), epochs: 1, batchSize: 8, std: [0], knn: false, progress: 'none' })).rejects.toThrow(/std must be > 0/);
    // A bad augmentation value is caught before anything is written (it was only met at the first batch).
    const out = path.join(tempDir('x'), 'never');
    await expect(train({ method: 'simclr', data, outDir: out, epochs: 1, batchSize: 8, augment: { hflipProb: 2 }, progress: 'none' })).rejects.toThrow(/horizontal flip probability must be in \[0, 1\], got 2/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('refuses to start a new run over a checkpoint or a trained model unless told to resume or overwrite', async () => {
    const out = tempDir('again');
    const base = { method: 'simclr', data, outDir: out, batchSize: 8, encoder: TINY_ENCODER, methodConfig: TINY_HEAD, augment: SMALL_AUGMENT, knn: false as const, progress: 'none' as const };
    const stopped = await train({ ...base, epochs: 2, stopAfterEpochs: 1 });
    expect(stopped.complete).toBe(false);
    await expect(train({ ...base, epochs: 2 })).rejects.toThrow(`${out} already holds a checkpoint: pass --resume to continue that run, --overwrite to start a new one there`);
    const finished = await train({ ...base, epochs: 2, resume: true });
    expect(finished.history).toHaveLength(2);
    const weights = fs.readFileSync(path.join(out, 'weights.bin'));
    await expect(train({ ...base, epochs: 1, seed: 5 })).rejects.toThrow(/already holds a (checkpoint|trained model)/);
    expect(fs.readFileSync(path.join(out, 'weights.bin')).equals(weights)).toBe(true); // untouched
    // Overwriting starts afresh: one epoch, other weights, no history of the replaced run, its log set aside.
    const again = await train({ ...base, epochs: 1, seed: 5, overwrite: true });
    expect(again.history).toHaveLength(1);
    expect(fs.readFileSync(path.join(out, 'weights.bin')).equals(weights)).toBe(false);
    expect(fs.readdirSync(out).filter((f) => /^train-log\.replaced-.*\.jsonl$/.test(f))).toHaveLength(1);
    // A model without a checkpoint (e.g. one copied in) is not replaced by --resume either.
    fs.rmSync(path.join(out, CHECKPOINT_DIR), { recursive: true, force: true });
    await expect(train({ ...base, epochs: 1, resume: true })).rejects.toThrow(`${out} already holds a trained model and no checkpoint to resume`);
  });
});

describe('moco without the symmetric loss', () => {
  it('queues the N keys of view 2 per step, as MoCo v2 does (not the 2N keys of both views)', () => {
    const enc = resnetConfig(TINY_ENCODER, 8, 1);
    const cfg = methodClass('moco').configure({ ...TINY_HEAD, queueSize: 48, symmetric: false });
    const Moco = methodClass('moco');
    const moco = new Moco(buildResNet(enc), cfg as never, { buildEncoder: () => buildResNet(enc), datasetSize: 32, seed: 1 });
    const before = moco.getState().tensors['moco/queue'].arraySync() as number[][];
    const views = [tf.randomNormal([8, 8, 8, 1], 0, 1, 'float32', 1), tf.randomNormal([8, 8, 8, 1], 0, 1, 'float32', 2)] as tf.Tensor4D[];
    const batch = { views, indices: Int32Array.from({ length: 8 }, (_, i) => i), epoch: 0, step: 0 };
    moco.beforeStep(batch);
    const loss = tf.tidy(() => moco.computeLoss(batch));
    expect(Number.isFinite(loss.dataSync()[0])).toBe(true);
    moco.afterStep(batch);
    const after = moco.getState().tensors['moco/queue'].arraySync() as number[][];
    expect(after).toHaveLength(48);
    // The 40 oldest rows moved down by 8: 8 keys went in.
    for (let i = 0; i < 40; i++) after[i + 8].forEach((x, j) => expect(x).toBeCloseTo(before[i][j], 6));
    tf.dispose([loss, ...views]);
  });
});

describe('moco shuffling BN', () => {
  const enc = resnetConfig(TINY_ENCODER, 8, 1);
  const cfg = methodClass('moco').configure({ ...TINY_HEAD, queueSize: 48 });
  const Moco = methodClass('moco');

  it('splits a shuffled batch into near-equal sub-batches of at least two images', () => {
    const perm = Int32Array.from([5, 2, 7, 0, 3, 6, 1, 4, 8]);
    expect(shuffleGroupsOf(perm, 4).map((g) => Array.from(g))).toEqual([[5, 2], [7, 0], [3, 6], [1, 4, 8]]);
    expect(shuffleGroupsOf(perm.slice(0, 5), 4).map((g) => g.length)).toEqual([2, 3]);
    expect(shuffleGroupsOf(perm, 1).map((g) => Array.from(g))).toEqual([Array.from(perm)]);
    expect(() => methodClass('moco').configure({ shuffleGroups: 0 })).toThrow(/shuffleGroups must be a positive integer/);
  });

  it("normalises each key with its own sub-batch's statistics, so a key depends on its sub-batch only, in batch order", () => {
    const moco = new Moco(buildResNet(enc), cfg as never, { buildEncoder: () => buildResNet(enc), datasetSize: 32, seed: 1 }) as unknown as { keyNetwork: tf.LayersModel; dispose(): void };
    const x = tf.randomNormal([8, 8, 8, 1], 0, 1, 'float32', 3) as tf.Tensor4D;
    const groups = shuffleGroupsOf(Int32Array.from([6, 1, 3, 0, 7, 2, 5, 4]), 4); // {6,1} {3,0} {7,2} {5,4}
    const keys = shuffledKeys(moco.keyNetwork, x, groups).arraySync();
    // One sub-batch alone gives the same keys as its rows of the whole computation.
    const alone = shuffledKeys(moco.keyNetwork, tf.gather(x, [3, 0]) as tf.Tensor4D, [Int32Array.from([0, 1])]).arraySync();
    alone.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(keys[[3, 0][i]][j], 5)));
    // Change image 7: the keys of 7 and of its partner 2 move (shared statistics), no other key does.
    const changed = tf.tidy(() => x.add(tf.oneHot(7, 8).reshape([8, 1, 1, 1]).mul(3))) as tf.Tensor4D;
    const after = shuffledKeys(moco.keyNetwork, changed, groups).arraySync();
    const moved = after.map((row, i) => Math.max(...row.map((v, j) => Math.abs(v - keys[i][j]))) > 1e-4);
    expect(moved).toEqual([false, false, true, false, false, false, false, true]);
    // One group is the plain full-batch pass.
    const whole = tf.tidy(() => {
      const z = (moco.keyNetwork.apply(x, { training: true }) as tf.Tensor2D[])[1];
      return z.div(z.norm('euclidean', 1, true)).arraySync() as number[][];
    });
    shuffledKeys(moco.keyNetwork, x, shuffleGroupsOf(Int32Array.from([2, 0, 1, 3, 4, 5, 6, 7]), 1)).arraySync().forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(whole[i][j], 5)));
    tf.dispose([x, changed]);
    moco.dispose();
  });
});

describe('membank state', () => {
  it('keeps log Z across a checkpoint and reads Z from checkpoints written before log Z was kept', () => {
    const enc = resnetConfig(TINY_ENCODER, 8, 1);
    const cfg = MemoryBankMethod.configure({ ...TINY_HEAD, negatives: 16 });
    const make = () => new MemoryBankMethod(buildResNet(enc), cfg, { buildEncoder: () => buildResNet(enc), datasetSize: 32, seed: 1 });
    const a = make();
    a.logZ = 3.5;
    const saved = a.getState();
    const b = make();
    b.setState(saved);
    expect(b.logZ).toBe(3.5);
    b.setState({ tensors: saved.tensors, json: { z: 2 } });
    expect(b.logZ).toBeCloseTo(Math.log(2), 12);
  });
});
