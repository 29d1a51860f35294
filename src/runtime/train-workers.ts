/**
 * Data-parallel training over worker threads: the wasm backend is single-threaded in Node, so each
 * worker runs its own wasm instance on a shard of the batch; the main thread averages the shard
 * gradients (weighted by shard size, so the result is the full-batch mean gradient) and applies them
 * with its optimizer. Batch-norm statistics are computed per shard ("ghost batch norm", standard for
 * data-parallel training); the moving averages the workers return are averaged the same way.
 *
 * Loss: mean over the batch of mean(output²) (see shardLoss) — the benchmark's loss; other losses
 * need their own shardLoss.
 */
import * as os from 'node:os';
import type { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import type { ConvKernelChoice } from './backend';
import type { FromWorker, StepResult, ToWorker } from './train-workers-protocol';
import { startWorker } from './worker-script';

/** The per-shard training loss: mean(model(x)²) with batch norm in training mode. */
export function shardLoss(model: tf.LayersModel, x: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(model.apply(x, { training: true }) as tf.Tensor)));
}

/** One worker and its pending reply. */
class GradientWorker {
  private pending: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly worker: Worker) {
    worker.on('message', (m: FromWorker) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (m.kind === 'error') p.reject(new Error(`train worker: ${m.message}`));
      else p.resolve(m);
    });
    worker.on('error', (err) => this.pending?.reject(err));
  }

  request(msg: ToWorker, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(msg, transfer);
    });
  }

  async close(): Promise<void> {
    this.worker.postMessage({ kind: 'close' } satisfies ToWorker);
    await this.worker.terminate();
  }
}

/** Splits n rows into `parts` contiguous shards as [start, size] (sizes differ by at most one). */
export function shardRows(n: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 0; i < parts; i++) {
    const size = Math.floor(n / parts) + (i < n % parts ? 1 : 0);
    if (size > 0) out.push([start, size]);
    start += size;
  }
  return out;
}

export class DataParallelTrainer {
  private constructor(
    private readonly model: tf.LayersModel,
    private readonly optimizer: tf.Optimizer,
    private readonly workers: GradientWorker[],
  ) {}

  /**
   * Starts `workers` gradient workers (default: one per core) holding copies of `model`, their
   * convolutions run as `convKernels` says (default: the wasm kernels).
   */
  static async create(model: tf.LayersModel, optimizer: tf.Optimizer, workers = os.cpus().length, convKernels: ConvKernelChoice = 'wasm'): Promise<DataParallelTrainer> {
    const modelJson = JSON.stringify(model.toJSON(null, false));
    const pool = Array.from({ length: Math.max(1, workers) }, () => new GradientWorker(startWorker(__dirname, 'train-workers-thread')));
    await Promise.all(pool.map((w) => w.request({ kind: 'init', modelJson, convKernels })));
    return new DataParallelTrainer(model, optimizer, pool);
  }

  /** One optimizer step on batch x [N, ...]; returns the batch loss. */
  async step(x: tf.Tensor): Promise<number> {
    const n = x.shape[0];
    const rowSize = x.size / n;
    const data = x.dataSync() as Float32Array;
    const weights = this.model.getWeights().map((w) => w.dataSync() as Float32Array);
    const shards = shardRows(n, this.workers.length);
    const results = (await Promise.all(
      shards.map(([start, size], i) =>
        this.workers[i].request({
          kind: 'step',
          weights,
          x: data.slice(start * rowSize, (start + size) * rowSize),
          xShape: [size, ...x.shape.slice(1)],
        }),
      ),
    )) as StepResult[];
    const share = shards.map(([, size]) => size / n);
    tf.tidy(() => {
      const grads: tf.NamedTensorMap = {};
      this.model.trainableWeights.forEach((w, i) => {
        grads[(w.read() as tf.Variable).name] = tf.tensor(weightedMean(results.map((r) => r.grads[i]), share), w.shape as number[]);
      });
      this.optimizer.applyGradients(grads);
      this.model.nonTrainableWeights.forEach((w, i) => {
        w.write(tf.tensor(weightedMean(results.map((r) => r.nonTrainable[i]), share), w.shape as number[]));
      });
    });
    return results.reduce((sum, r, i) => sum + r.loss * share[i], 0);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
  }
}

/** Σ_i share[i] · parts[i], element-wise. */
function weightedMean(parts: Float32Array[], share: number[]): Float32Array {
  const out = new Float32Array(parts[0].length);
  parts.forEach((p, k) => {
    for (let i = 0; i < out.length; i++) out[i] += p[i] * share[k];
  });
  return out;
}
