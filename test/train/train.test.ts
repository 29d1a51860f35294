/**
 * A short real training run: SimCLR on 256 Fashion-MNIST images at 12 px (cpu backend, tiny
 * encoder) lowers the loss and lifts k-NN accuracy above the same encoder with random weights.
 */
import { subsetDataset } from '../../src/data/dataset';
import { openIdx } from '../../src/data/idx-dataset';
import { loadModelDir } from '../../src/model/model-dir';
import { train } from '../../src/train/trainer';
import { SMALL_AUGMENT, tempDir, TINY_ENCODER, TINY_HEAD, useCpu } from './helpers';

beforeAll(useCpu);

describe('training on real images', () => {
  it('lowers the loss and beats the random-weight encoder on k-NN', async () => {
    const all = await openIdx('idx:fashion-mnist', { size: 12, channels: 1 }, 756);
    const data = subsetDataset(all, Array.from({ length: 256 }, (_, i) => i), 'fmnist-train-256');
    const bank = subsetDataset(all, Array.from({ length: 500 }, (_, i) => 256 + i), 'fmnist-bank-500');
    const val = await openIdx('idx:fashion-mnist:test', { size: 12, channels: 1 }, 250);
    const out = tempDir('simclr');
    const result = await train({
      method: 'simclr',
      data,
      outDir: out,
      epochs: 3,
      batchSize: 64,
      lr: 3e-3,
      warmupEpochs: 0,
      encoder: TINY_ENCODER,
      methodConfig: TINY_HEAD,
      augment: SMALL_AUGMENT,
      knn: { bank, val, every: 3 },
      progress: 'none',
      seed: 1,
    });
    const h = result.history;
    expect(h).toHaveLength(3);
    expect(h[2].loss).toBeLessThan(h[0].loss);
    expect(result.initialKnnAccuracy).toBeDefined();
    expect(h[0].knnAccuracy).toBeUndefined(); // monitor every 3 epochs
    expect(h[2].knnAccuracy!).toBeGreaterThan(result.initialKnnAccuracy! + 0.03);
    const loaded = await loadModelDir(out);
    loaded.model.dispose();
    expect(loaded.manifest.quality).toMatchObject({ knn: { accuracy: h[2].knnAccuracy, k: 200, temperature: 0.1, randomInitAccuracy: result.initialKnnAccuracy } });
    expect(loaded.manifest.training).toMatchObject({ method: 'simclr', epochs: 3, hyperParameters: { temperature: 0.5 } });
  });
});
