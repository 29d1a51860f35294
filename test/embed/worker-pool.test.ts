/**
 * The worker pool survives its workers: a worker that dies fails only the batch it held, a replacement
 * takes its place, and nothing waits forever. Workers are real inference threads; a crash is simulated
 * by terminating one from outside, which is how an abort inside the thread looks to the pool.
 */
import type { Worker } from 'node:worker_threads';
import { WorkerPoolEngine } from '../../src/embed/worker-pool';
import { TEST_MODEL } from '../helpers';

const SIDE = 28; // the test model's input: 28 x 28 x 1
const batch = (n: number) => new Uint8Array(n * SIDE * SIDE).map((_, i) => (i * 31) % 256);
const workersOf = (pool: WorkerPoolEngine) => (pool as unknown as { slots: Array<{ worker: Worker }> }).slots.map((s) => s.worker);

describe('WorkerPoolEngine', () => {
  it('fails the batch of a worker that dies, replaces the worker, and serves the next batch', async () => {
    const pool = await WorkerPoolEngine.open(TEST_MODEL, 1, 'wasm');
    try {
      const expected = await pool.run(batch(4), 4);
      const held = pool.run(batch(512), 512);
      await workersOf(pool)[0].terminate();
      await expect(held).rejects.toThrow(/exited/);
      // Queued while the replacement starts, answered once it is ready.
      await expect(pool.run(batch(4), 4)).resolves.toEqual(expected);
      expect(pool.size).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('close() fails the batches in flight and refuses new ones', async () => {
    const pool = await WorkerPoolEngine.open(TEST_MODEL, 1, 'wasm');
    const held = expect(pool.run(batch(512), 512)).rejects.toThrow(/closed/);
    const queued = expect(pool.run(batch(4), 4)).rejects.toThrow(/closed/);
    await pool.close();
    await Promise.all([held, queued]);
    await expect(pool.run(batch(4), 4)).rejects.toThrow(/closed/);
  });
});
