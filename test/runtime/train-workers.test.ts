/** Data-parallel training over worker threads matches single-thread training (no batch norm). */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend';
import { DataParallelTrainer, shardLoss, shardRows } from '../../src/runtime/train-workers';

function smallNet(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 1] });
  let y = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
  y = tf.layers.globalAveragePooling2d({}).apply(y) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(y) as tf.SymbolicTensor });
}

describe('DataParallelTrainer', () => {
  beforeAll(async () => {
    await initBackend('wasm');
  });

  it('splits rows into near-equal shards', () => {
    expect(shardRows(7, 2)).toEqual([
      [0, 4],
      [4, 3],
    ]);
    expect(shardRows(1, 2)).toEqual([[0, 1]]);
  });

  it('two workers take the same Adam steps as one thread on the full batch, without leaks', async () => {
    const x = tf.tensor(Array.from({ length: 5 * 64 }, (_, i) => Math.sin(i * 0.37)), [5, 8, 8, 1]);
    const direct = smallNet();
    const directOpt = tf.train.adam(0.05);
    const parallelModel = smallNet();
    const trainer = await DataParallelTrainer.create(parallelModel, tf.train.adam(0.05), 2);
    try {
      const counts: number[] = [];
      for (let step = 0; step < 3; step++) {
        const loss = directOpt.minimize(() => shardLoss(direct, x), true) as tf.Scalar;
        const want = loss.dataSync()[0];
        loss.dispose();
        const got = await trainer.step(x);
        expect(Math.abs(got - want) / want).toBeLessThan(1e-4);
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts.slice(1)).size).toBe(1);
    } finally {
      await trainer.dispose();
    }
  });
});
