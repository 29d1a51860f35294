/**
 * Runs the cache-blocked SIMD filter-gradient kernel (./simd/filter-grad.c) on float32 arrays, on one
 * or more threads.
 *
 * The kernel is its own ~2 KB wasm module with its own shared memory: inputs are copied in (one
 * memcpy-speed pass, ~1% of the kernel's time) rather than read from tfjs's heap, so it does not depend
 * on the Emscripten build's memory layout or growth. With T threads, T − 1 helper workers each run an
 * instance of the module on that memory; the batch is split into T ranges of images, each thread sums
 * its range into its own filter buffer, and the main thread adds the T buffers (kh·kw·C·O values).
 * The main thread blocks on an Atomics.wait while the helpers run: the kernel is synchronous, like
 * every tfjs kernel. Helpers start on the first call and flag themselves ready; until all are ready
 * (a worker starts only once the main thread's event loop turns) calls run on the main thread alone,
 * so a call never waits for a thread that has not started. The memory grows to the largest call seen
 * and is reused.
 */
import * as path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../worker-script';
import { WASM_BASE64 } from './simd/filter-grad.wasm';

export interface FilterGradGeometry {
  /** input [n, h, w, c] */
  n: number;
  h: number;
  w: number;
  c: number;
  /** output gradient [n, oh, ow, o] */
  oh: number;
  ow: number;
  o: number;
  /** filter taps and strides */
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  /** padding before the first row / column */
  top: number;
  left: number;
}

// The project's TypeScript libs (ES2023 + @types/node) do not declare WebAssembly; this is the part used.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
};
export interface WasmMemory {
  buffer: ArrayBufferLike;
  grow(pages: number): number;
}
export interface FilterGradExports {
  __heap_base: { value: number };
  filter_grad(geometry: number, x: number, dy: number, dw: number, nBegin: number, nEnd: number): void;
}

/** Bytes of input and output gradient per L2 block (half of this machine's 512 KB L2 per core). */
const BLOCK_BYTES = 256 * 1024;
const PAGE_BYTES = 65536;
/** The module's declared maximum (scripts/build-wasm-kernels.sh: --max-memory, 2 GiB). */
const MAX_PAGES = 32768;
const GEOMETRY_INTS = 14;
/** Control words: [generation, done, failures, helpers ready], then per helper [geometry, x, dy, dw, nBegin, nEnd]. */
export const CONTROL_HEADER = 4;
export const READY = 3;
export const ARGS_PER_HELPER = 6;
/** A helper that does not answer within this time is reported, not waited for forever. */
const HELPER_TIMEOUT_MS = 600_000;

interface Runner {
  threads: number;
  memory: WasmMemory;
  kernel: FilterGradExports;
  control: Int32Array;
  helpers: Worker[];
}

let wasmModule: object | undefined;
let runner: Runner | undefined;
let helperError: string | undefined;

/** How many threads the last call could use, and why helpers are missing if one failed to start. */
export function simdFilterGradStatus(): { threads: number; helpersReady: number; helperError?: string } {
  if (!runner) return { threads: 0, helpersReady: 0 };
  return { threads: runner.threads, helpersReady: Atomics.load(runner.control, READY), ...(helperError ? { helperError } : {}) };
}

function startRunner(threads: number): Runner {
  wasmModule ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  const memory = new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES, shared: true });
  const kernel = new WebAssembly.Instance(wasmModule, { env: { memory } }).exports as FilterGradExports;
  const control = new Int32Array(new SharedArrayBuffer((CONTROL_HEADER + ARGS_PER_HELPER * threads) * 4));
  const helpers = Array.from({ length: threads - 1 }, (_, index) => {
    const worker = startWorker(__dirname, 'simd-filter-grad-worker', {
      workerData: { wasmModule, memory, control: control.buffer, index },
    });
    // The helpers idle in Atomics.wait between calls; they must not keep the process alive.
    worker.unref();
    // A helper that fails to start never flags itself ready, so calls stay on the main thread; the
    // error is kept for simdFilterGradStatus() instead of crashing the process.
    worker.on('error', (err) => {
      helperError = err instanceof Error ? err.message : String(err);
    });
    return worker;
  });
  return { threads, memory, kernel, control, helpers };
}

function runnerFor(threads: number): Runner {
  if (runner?.threads !== threads) {
    runner?.helpers.forEach((w) => void w.terminate());
    runner = startRunner(threads);
  }
  return runner;
}

/**
 * Starts the helper threads for `threads`-way calls and resolves once they are ready (true), or false
 * if one failed or they were not ready within `timeoutMs` (calls then run on the main thread). Optional:
 * the first multi-threaded call starts them too, but runs alone until they are up.
 */
export async function startSimdFilterGradHelpers(threads: number, timeoutMs = 30_000): Promise<boolean> {
  const r = runnerFor(Math.max(1, threads));
  const deadline = Date.now() + timeoutMs;
  while (Atomics.load(r.control, READY) < r.threads - 1) {
    if (helperError !== undefined || Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

function layout(g: FilterGradGeometry, threads: number, base: number) {
  const xAt = align16(base + GEOMETRY_INTS * 4);
  const dyAt = align16(xAt + g.n * g.h * g.w * g.c * 4);
  const dwLength = g.kh * g.kw * g.c * g.o;
  const dwAt = align16(dyAt + g.n * g.oh * g.ow * g.o * 4);
  const dwStride = align16(dwLength * 4);
  return { xAt, dyAt, dwAt, dwLength, dwStride, end: dwAt + dwStride * threads };
}

/**
 * Whether the kernel handles this shape: its output tiles are 8 filters wide, and the inputs must fit
 * its 2 GiB memory (1 MiB is left for the heap base and the filters).
 */
export function simdFilterGradSupports(g: Pick<FilterGradGeometry, 'n' | 'h' | 'w' | 'c' | 'oh' | 'ow' | 'o'>): boolean {
  const bytes = (g.n * g.h * g.w * g.c + g.n * g.oh * g.ow * g.o) * 4;
  return g.o % 8 === 0 && bytes < MAX_PAGES * PAGE_BYTES - (1 << 20);
}

/**
 * dW [kh, kw, c, o] = Σ over the batch and output pixels of x patch × dy (NHWC, dilation 1), on
 * `threads` threads. `x` holds n·h·w·c values and `dy` n·oh·ow·o, both row-major NHWC.
 */
export function simdFilterGrad(x: Float32Array, dy: Float32Array, g: FilterGradGeometry, threads = 1): Float32Array {
  if (!simdFilterGradSupports(g)) throw new RangeError(`simdFilterGrad needs a multiple of 8 filters and < 2 GiB of inputs, got ${g.o} filters`);
  if (x.length !== g.n * g.h * g.w * g.c || dy.length !== g.n * g.oh * g.ow * g.o) {
    throw new RangeError('simdFilterGrad: array lengths do not match the geometry');
  }
  const r = runnerFor(Math.max(1, threads));
  const ctl = r.control;
  const helpersReady = Atomics.load(ctl, READY) === r.threads - 1;
  const parts = helpersReady ? Math.max(1, Math.min(threads, g.n)) : 1;
  const base = r.kernel.__heap_base.value;
  const at = layout(g, parts, base);
  if (at.end > r.memory.buffer.byteLength) r.memory.grow(Math.ceil((at.end - r.memory.buffer.byteLength) / PAGE_BYTES));
  const heap = new Float32Array(r.memory.buffer);
  heap.set(x, at.xAt / 4);
  heap.set(dy, at.dyAt / 4);
  heap.fill(0, at.dwAt / 4, (at.dwAt + at.dwStride * parts) / 4);
  const imageBytes = (g.h * g.w * g.c + g.oh * g.ow * g.o) * 4;
  const chunk = Math.max(1, Math.floor(BLOCK_BYTES / imageBytes));
  // field order of the C struct Geometry
  new Int32Array(r.memory.buffer, base, GEOMETRY_INTS).set([
    g.n, g.h, g.w, g.c, g.oh, g.ow, g.o, g.kh, g.kw, g.sh, g.sw, g.top, g.left, chunk,
  ]);
  // images [bounds[p], bounds[p + 1]) go to part p; part 0 is this thread's
  const bounds = Array.from({ length: parts + 1 }, (_, p) => Math.round((p * g.n) / parts));
  if (parts > 1) {
    for (let p = 1; p < parts; p++) {
      ctl.set([base, at.xAt, at.dyAt, at.dwAt + p * at.dwStride, bounds[p], bounds[p + 1]], CONTROL_HEADER + (p - 1) * ARGS_PER_HELPER);
    }
    // helpers beyond `parts` (tiny batches) get an empty range
    for (let p = parts; p < r.threads; p++) ctl.set([base, 0, 0, 0, 0, 0], CONTROL_HEADER + (p - 1) * ARGS_PER_HELPER);
    Atomics.store(ctl, 1, 0);
    Atomics.store(ctl, 2, 0);
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
  }
  r.kernel.filter_grad(base, at.xAt, at.dyAt, at.dwAt, bounds[0], bounds[1]);
  if (parts > 1) {
    const failure = waitForHelpers(ctl, r.threads - 1) ?? (Atomics.load(ctl, 2) > 0 ? 'a helper thread failed' : undefined);
    if (failure) {
      // Start over with fresh helpers next time rather than share memory with a stuck or failed one.
      runner = undefined;
      r.helpers.forEach((w) => void w.terminate());
      throw new Error(`simdFilterGrad: ${failure}`);
    }
  }
  const dw = heap.slice(at.dwAt / 4, at.dwAt / 4 + at.dwLength);
  for (let p = 1; p < parts; p++) {
    const from = (at.dwAt + p * at.dwStride) / 4;
    for (let i = 0; i < at.dwLength; i++) dw[i] += heap[from + i];
  }
  return dw;
}

/** Blocks until every helper has finished this call; the reason if one did not in time. */
function waitForHelpers(ctl: Int32Array, helpers: number): string | undefined {
  const deadline = Date.now() + HELPER_TIMEOUT_MS;
  for (;;) {
    const done = Atomics.load(ctl, 1);
    if (done >= helpers) return undefined;
    if (Date.now() > deadline) return `${helpers - done} helper thread(s) did not finish within ${HELPER_TIMEOUT_MS / 1000} s`;
    Atomics.wait(ctl, 1, done, 1000);
  }
}
