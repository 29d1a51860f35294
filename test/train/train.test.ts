/**
 * A short real training run: SimCLR on 256 Fashion-MNIST images at 12 px (cpu backend, tiny
 * encoder) lowers the loss and lifts k-NN accuracy above the same encoder with random weights.
 * Runs in a worker thread (see scenarios.ts).
 */
import type { ModelManifest } from '../../src/model/manifest';
import type { EpochRecord } from '../../src/train/checkpoint';
import { runScenario } from './helpers';

describe('training on real images', () => {
  it('lowers the loss and beats the random-weight encoder on k-NN', async () => {
    const { history: h, initialKnnAccuracy, manifest, projectionKnn } = await runScenario<{ history: EpochRecord[]; initialKnnAccuracy: number; manifest: ModelManifest; projectionKnn: number }>('simclrReal');
    expect(h).toHaveLength(3);
    expect(h[2].loss).toBeLessThan(h[0].loss);
    expect(h[0].knnAccuracy).toBeUndefined(); // monitor every 3 epochs
    expect(initialKnnAccuracy).toBeGreaterThan(0);
    expect(h[2].knnAccuracy!).toBeGreaterThan(initialKnnAccuracy + 0.03);
    // The monitor measures both outputs from one pass; the served one (encoder) is knnAccuracy.
    expect(h[2].knnByOutput).toEqual({ encoder: h[2].knnAccuracy, projection: expect.closeTo(projectionKnn, 6) });
    expect(manifest.quality).toMatchObject({ knn: { accuracy: h[2].knnAccuracy, byOutput: h[2].knnByOutput, k: 200, temperature: 0.1, randomInitAccuracy: initialKnnAccuracy } });
    expect(manifest.training).toMatchObject({ method: 'simclr', epochs: 3, hyperParameters: { temperature: 0.5 } });
  }, 300_000); // ~40 s on an idle 2-core machine; a real training run slows a lot on a loaded one
});
