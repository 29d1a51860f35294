/**
 * Spreads inference batches over worker threads. Each worker holds its own backend and model, so on
 * the wasm backend (single-threaded per instance) N workers use N cores. A batch goes to an idle
 * worker, or waits in a FIFO queue.
 */
import type { Worker } from 'node:worker_threads';
import type { BackendChoice } from '../runtime/backend';
import { startWorker } from '../runtime/worker-script';
import type { InferenceEngine } from './engine';
import type { WorkerInit, WorkerRequest, WorkerResponse } from './inference-worker';

interface Job {
  id: number;
  pixels: Uint8Array;
  count: number;
  resolve: (v: Float32Array) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy?: Job;
}

export class WorkerPoolEngine implements InferenceEngine {
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;

  private constructor(private readonly slots: Slot[]) {
    for (const slot of slots) {
      slot.worker.on('message', (msg: WorkerResponse) => this.onMessage(slot, msg));
      slot.worker.on('error', (err) => this.onWorkerDeath(slot, err));
    }
  }

  static async open(modelDir: string, workers: number, backend: BackendChoice): Promise<WorkerPoolEngine> {
    if (!(workers >= 1)) throw new RangeError(`workers must be >= 1, got ${workers}`);
    const started = Array.from({ length: workers }, () => startWorker(__dirname, 'inference-worker', { workerData: { modelDir, backend } satisfies WorkerInit }));
    try {
      await Promise.all(started.map((w) => waitReady(w)));
    } catch (err) {
      await Promise.all(started.map((w) => w.terminate()));
      throw err;
    }
    return new WorkerPoolEngine(started.map((worker) => ({ worker })));
  }

  get size(): number {
    return this.slots.length;
  }

  run(pixels: Uint8Array, count: number): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new Error('inference engine is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, pixels, count, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (slot.busy || this.queue.length === 0) continue;
      const job = this.queue.shift()!;
      slot.busy = job;
      slot.worker.postMessage({ id: job.id, pixels: job.pixels, count: job.count } satisfies WorkerRequest);
    }
  }

  private onMessage(slot: Slot, msg: WorkerResponse): void {
    if (!('id' in msg)) return;
    const job = slot.busy;
    slot.busy = undefined;
    if (job && job.id === msg.id) {
      if (msg.vectors) job.resolve(msg.vectors);
      else job.reject(new Error(msg.error ?? 'inference failed'));
    }
    this.dispatch();
  }

  private onWorkerDeath(slot: Slot, err: Error): void {
    slot.busy?.reject(err);
    slot.busy = undefined;
    // A dead worker takes no more jobs; fail fast rather than queue forever when all are gone.
    this.slots.splice(this.slots.indexOf(slot), 1);
    if (this.slots.length === 0) for (const job of this.queue.splice(0)) job.reject(new Error(`all inference workers died: ${err.message}`));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('inference engine closed'));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}

function waitReady(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: WorkerResponse): void => {
      if ('ready' in msg) resolve();
      else if ('fatal' in msg) reject(new Error(`inference worker failed to start: ${msg.fatal}`));
      else return;
      worker.off('message', onMessage);
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`inference worker exited with code ${code} during start-up`)));
  });
}
