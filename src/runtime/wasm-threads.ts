/**
 * Multi-threaded XNNPACK for the wasm backend in Node.
 *
 * tfjs-backend-wasm ships a threaded SIMD build (Emscripten pthreads → worker_threads) but disables it
 * in Node (tensorflow/tfjs#3830) for two reasons we work around here, without patching the package:
 *
 * 1. Emscripten starts each pthread with `new Worker(blobURL)`, and tfjs hands the worker its main
 *    script as a Blob. Node's Worker takes neither a blob: URL nor a Blob script. We install a global
 *    `Worker` that turns the blob URL back into its Blob (buffer.resolveObjectURL, main thread only),
 *    starts a small bootstrap with it, and the bootstrap reads both Blobs asynchronously before any
 *    message reaches the Emscripten worker code (a MessagePort queues messages until a listener is on).
 * 2. The worker's script is the factory function's source, cut out of tfjs's CommonJS bundle, so it
 *    refers to the bundle's module variables (`require$$0` = fs, …, `commonjsGlobal`, tslib helpers).
 *    The bootstrap defines them as globals of the worker.
 *
 * The threaded build sizes XNNPACK's pool as min(requested, logical cores / 2) (it assumes two hardware
 * threads per core); we report the cores as 2 × requested while the backend initialises, so the pool
 * gets exactly the requested threads.
 *
 * Only XNNPACK ops (convolutions, matrix products, some element-wise ops) use the pool; everything
 * else stays on the calling thread. Checked against the single-threaded build in
 * test/runtime/wasm-threads.test.ts. Written for tfjs-backend-wasm 4.22 (the pinned version).
 */
import { resolveObjectURL } from 'buffer';
import os from 'os';
import { Worker as NodeWorker, type WorkerOptions } from 'worker_threads';
import * as tf from '@tensorflow/tfjs';

/** Runs inside each pthread worker: define the bundle's module variables, then load the two Blobs. */
const BOOTSTRAP = String.raw`
const { parentPort, workerData } = require('worker_threads');
Object.assign(globalThis, {
  require$$0: require('fs'), require$$1: require('path'), require$$3: require('perf_hooks'), require$$4: require('os'),
  commonjsGlobal: globalThis,
  __values: (o) => o[Symbol.iterator](),
  __read: (o, n) => { const a = []; for (const v of o) { if (n !== undefined && a.length >= n) break; a.push(v); } return a; },
  __spreadArray: (to, from) => to.concat(Array.prototype.slice.call(from)),
});
const listen = parentPort.on.bind(parentPort);
// Emscripten's worker code registers one 'message' listener; feed it in order, after its 'load'
// message's main script (a Blob) has been read and evaluated.
parentPort.on = (event, handler) => {
  if (event !== 'message') return listen(event, handler);
  const queue = [];
  let draining = false;
  const drain = async () => {
    if (draining) return;
    draining = true;
    while (queue.length > 0) {
      const data = queue.shift();
      if (data && data.cmd === 'load' && typeof data.urlOrBlob !== 'string') {
        (0, eval)(await data.urlOrBlob.text());
        data.urlOrBlob = '';
        const importScripts = globalThis.importScripts;
        globalThis.importScripts = (file) => (file === '' ? undefined : importScripts(file));
      }
      handler(data);
    }
    draining = false;
  };
  return listen('message', (data) => { queue.push(data); void drain(); });
};
workerData.script.text().then((code) => (0, eval)(code));
`;

class BlobUrlWorker extends NodeWorker {
  constructor(file: string | URL, options?: WorkerOptions) {
    const blob = typeof file === 'string' && file.startsWith('blob:') ? resolveObjectURL(file) : undefined;
    if (blob) super(BOOTSTRAP, { eval: true, workerData: { script: blob } });
    else super(file, options);
    // XNNPACK's pool threads wait for work forever; the main thread blocks on Atomics while they
    // compute, so they never need the event loop. Unreferenced, they let the process exit.
    this.unref();
  }

  /** Emscripten re-references a worker when it starts a pthread; keep ours unreferenced. */
  override ref(): void {}
}

let requested: number | undefined;

/**
 * Workers the threaded build starts up front (its PTHREAD_POOL_SIZE). More threads would need workers
 * created while the main thread blocks waiting for them, which deadlocks in Node.
 */
export const MAX_WASM_THREADS = 8;

/**
 * Makes the next wasm backend initialisation in this thread use the threaded build with `threads`
 * XNNPACK threads. Call before tf.setBackend('wasm'); then wrap that call in withThreadedCoreCount.
 */
export function prepareWasmThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 2 || threads > MAX_WASM_THREADS) {
    throw new RangeError(`wasm threads must be an integer from 2 to ${MAX_WASM_THREADS}, got ${threads}`);
  }
  // Emscripten assigns globalThis.Worker = worker_threads.Worker when the module loads; keep ours.
  Object.defineProperty(globalThis, 'Worker', { get: () => BlobUrlWorker, set: () => undefined, configurable: true });
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  requested = threads;
}

/** How long the threaded build may take to start its workers before we give up (a hang otherwise). */
const START_TIMEOUT_MS = 60_000;

/**
 * Runs `init` (the backend initialisation) while os.cpus() reports 2 × the requested threads. With
 * threads requested, a start that does not finish within a minute is an error, not a hang.
 */
export async function withThreadedCoreCount<T>(init: () => Promise<T>): Promise<T> {
  if (requested === undefined) return init();
  const cpus = os.cpus;
  const real = cpus();
  const wanted = 2 * requested;
  os.cpus = () => Array.from({ length: wanted }, (_, i) => real[i % real.length]);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the threaded wasm backend did not start within ${START_TIMEOUT_MS / 1000} s; run with --threads 1`)),
      START_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([init(), timeout]);
  } finally {
    clearTimeout(timer);
    os.cpus = cpus;
  }
}

/** Threads XNNPACK uses on the wasm backend now (1 = the single-threaded build). */
export function wasmThreadCount(): number {
  if (tf.getBackend() !== 'wasm') return 1;
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const wasm = require('@tensorflow/tfjs-backend-wasm') as typeof import('@tensorflow/tfjs-backend-wasm');
  return wasm.getThreadsCount();
}
