/**
 * Spreads inference batches over worker threads. Each worker holds its own backend and model, so on
 * the wasm backend (single-threaded per instance) N workers use N cores. A batch goes to an idle
 * worker, or waits in a FIFO queue. A worker that dies fails only the batch it held, and is replaced.
 */
import type { Worker } from 'node:worker_threads';
import type { TtaMode } from '../model/manifest';
import type { BackendChoice, ConvKernelChoice } from '../runtime/backend';
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

/** Replacements per worker started in a row without a job finishing: a worker that dies on start-up is not retried forever. */
const MAX_RESPAWNS = 3;

export class WorkerPoolEngine implements InferenceEngine {
  private readonly queue: Job[] = [];
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;
  private respawning = 0;
  private failedRespawns = 0;

  private readonly maxRespawns: number;

  private constructor(
    workers: Worker[],
    private readonly start: () => Worker,
  ) {
    this.maxRespawns = MAX_RESPAWNS * workers.length;
    for (const worker of workers) this.adopt(worker);
  }

  static async open(modelDir: string, workers: number, backend: BackendChoice, tta?: TtaMode, convKernels: ConvKernelChoice = 'auto'): Promise<WorkerPoolEngine> {
    if (!(workers >= 1)) throw new RangeError(`workers must be >= 1, got ${workers}`);
    const start = () => startWorker(__dirname, 'inference-worker', { workerData: { modelDir, backend, tta, convKernels } satisfies WorkerInit });
    const started = Array.from({ length: workers }, start);
    try {
      await Promise.all(started.map((w) => waitReady(w)));
    } catch (err) {
      await Promise.all(started.map((w) => w.terminate()));
      throw err;
    }
    return new WorkerPoolEngine(started, start);
  }

  /** Live workers. */
  get size(): number {
    return this.slots.length;
  }

  run(pixels: Uint8Array, count: number): Promise<Float32Array> {
    if (this.closed) return Promise.reject(new Error('inference engine is closed'));
    if (this.slots.length === 0 && this.respawning === 0) return Promise.reject(new Error('no inference worker is running'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, pixels, count, resolve, reject });
      this.dispatch();
    });
  }

  private adopt(worker: Worker): void {
    const slot: Slot = { worker };
    this.slots.push(slot);
    worker.on('message', (msg: WorkerResponse) => this.onMessage(slot, msg));
    worker.on('error', (err) => this.onWorkerDeath(slot, err));
    // A worker can also end without an error event (process.exit in it, terminate): its job must not hang.
    worker.on('exit', (code) => this.onWorkerDeath(slot, new Error(`inference worker exited with code ${code}`)));
    this.dispatch();
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
      this.failedRespawns = 0;
      if (msg.vectors) job.resolve(msg.vectors);
      else job.reject(new Error(msg.error ?? 'inference failed'));
    }
    this.dispatch();
  }

  /** The dead worker's job fails (it may be the input that killed it); a replacement takes its place. */
  private onWorkerDeath(slot: Slot, err: Error): void {
    const at = this.slots.indexOf(slot);
    if (at < 0) return; // 'error' is followed by 'exit'
    this.slots.splice(at, 1);
    slot.busy?.reject(err);
    slot.busy = undefined;
    if (this.closed) return;
    if (this.failedRespawns < this.maxRespawns) void this.respawn(err);
    else this.failQueueIfNoWorkers(err);
  }

  private async respawn(cause: Error): Promise<void> {
    this.respawning++;
    this.failedRespawns++;
    let worker: Worker | undefined;
    try {
      worker = this.start();
      await waitReady(worker);
    } catch (err) {
      void worker?.terminate();
      worker = undefined;
      cause = err as Error;
    } finally {
      this.respawning--;
    }
    if (worker && this.closed) void worker.terminate();
    else if (worker) this.adopt(worker);
    else if (this.failedRespawns < this.maxRespawns) void this.respawn(cause);
    else this.failQueueIfNoWorkers(cause);
  }

  private failQueueIfNoWorkers(err: Error): void {
    if (this.slots.length > 0 || this.respawning > 0) return;
    for (const job of this.queue.splice(0)) job.reject(new Error(`all inference workers died: ${err.message}`));
  }

  async close(): Promise<void> {
    this.closed = true;
    const closed = new Error('inference engine closed');
    for (const job of this.queue.splice(0)) job.reject(closed);
    for (const slot of this.slots) slot.busy?.reject(closed);
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
