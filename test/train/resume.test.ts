/** Resume: a run stopped after one epoch and resumed ends exactly where an uninterrupted run does. */
import * as tf from '@tensorflow/tfjs';
import { ArrayDataset } from '../../src/data/dataset';
import { openIdx } from '../../src/data/idx-dataset';
import { loadModelDir } from '../../src/model/model-dir';
import { train, TrainOptions } from '../../src/train/trainer';
import { SMALL_AUGMENT, tempDir, TINY_ENCODER, TINY_HEAD, useCpu } from './helpers';

beforeAll(useCpu);

describe('resume', () => {
  it('a stopped and resumed MoCo run equals an uninterrupted one', async () => {
    const data: ArrayDataset = await openIdx('idx:fashion-mnist', { size: 8, channels: 1 }, 32);
    const base = (outDir: string): TrainOptions => ({
      method: 'moco',
      data,
      outDir,
      epochs: 2,
      batchSize: 16,
      encoder: TINY_ENCODER,
      methodConfig: { ...TINY_HEAD, queueSize: 48 },
      augment: SMALL_AUGMENT,
      knn: false,
      progress: 'none',
      seed: 7,
    });
    const straight = await train(base(tempDir('straight')));
    const cutDir = tempDir('cut');
    const first = await train({ ...base(cutDir), stopAfterEpochs: 1 });
    expect(first.complete).toBe(false);
    expect(first.history[0].loss).toBeCloseTo(straight.history[0].loss, 5);
    const resumed = await train({ ...base(cutDir), resume: true });
    expect(resumed.complete).toBe(true);
    expect(resumed.history.map((r) => r.epoch)).toEqual([1, 2]);
    expect(resumed.history[1].loss).toBeCloseTo(straight.history[1].loss, 4);
    const [a, b] = [await loadModelDir(straight.outDir), await loadModelDir(cutDir)];
    const wa = a.model.getWeights();
    const wb = b.model.getWeights();
    const maxDiff = Math.max(...wa.map((w, i) => tf.sub(w, wb[i]).abs().max().dataSync()[0]));
    expect(maxDiff).toBeLessThan(1e-4);
    a.model.dispose();
    b.model.dispose();
    await expect(train({ ...base(cutDir), resume: true, batchSize: 8 })).rejects.toThrow(/different settings/);
  });
});
