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
 * every tfjs kernel.
 *
 * Helpers start with the first call that asks for them (or startSimdFilterGradHelpers) and flag
 * themselves ready; until all are ready calls run on the main thread alone (a worker starts only once
 * the main thread's event loop turns), so a call never waits for a thread that has not started. A pool
 * serves every call with as many threads or fewer. If a helper fails or does not finish in time, the
 * main thread computes the whole call itself and the pool is dropped (the next call starts a new one).
 */
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

/** Bytes of input and output gradient per block: half of a 512 KB per-core L2 (this VM's; common on x86). */
const BLOCK_BYTES = 256 * 1024;
const PAGE_BYTES = 65536;
/** The module's declared maximum (scripts/build-wasm-kernels.sh: --max-memory, 2 GiB). */
const MAX_PAGES = 32768;
const GEOMETRY_INTS = 14;
/** Control words: [generation, done, failures, helpers ready], then per helper [geometry, x, dy, dw, nBegin, nEnd]. */
export const CONTROL_HEADER = 4;
export const READY = 3;
export const ARGS_PER_HELPER = 6;
/**
 * How long the main thread waits for the helpers after finishing its own part: its own time times this
 * (the parts are equal, so a healthy helper takes about as long), and at least HELPER_MIN_WAIT_MS.
 */
const HELPER_WAIT_FACTOR = 50;
const HELPER_MIN_WAIT_MS = 10_000;

interface Pool {
  threads: number;
  memory: WasmMemory;
  kernel: FilterGradExports;
  control: Int32Array;
  helpers: Worker[];
  /** Set when a helper failed to start or stopped; the pool is then dropped. */
  error?: string;
}

let wasmModule: object | undefined;
let pool: Pool | undefined;
let lastError: string | undefined;

/** The helper pool: its threads, how many helpers are ready, and the last helper failure if any. */
export function simdFilterGradStatus(): { threads: number; helpersReady: number; helperError?: string } {
  const error = lastError ? { helperError: lastError } : {};
  if (!pool) return { threads: 0, helpersReady: 0, ...error };
  return { threads: pool.threads, helpersReady: Atomics.load(pool.control, READY), ...error };
}

/** The current pool's helper workers (diagnostics and tests). */
export function simdFilterGradHelpers(): readonly Worker[] {
  return pool?.helpers ?? [];
}

/** Stops a pool's helpers; `failure` (recorded for simdFilterGradStatus) unless it is just being replaced. */
function dropPool(p: Pool, reason: string, failure = true): void {
  if (p.error !== undefined) return;
  p.error = reason;
  if (failure) lastError = reason;
  if (pool === p) pool = undefined;
  p.helpers.forEach((w) => void w.terminate());
}

function startPool(threads: number): Pool {
  wasmModule ??= new WebAssembly.Module(Buffer.from(WASM_BASE64, 'base64'));
  const memory = new WebAssembly.Memory({ initial: 2, maximum: MAX_PAGES, shared: true });
  const kernel = new WebAssembly.Instance(wasmModule, { env: { memory } }).exports as FilterGradExports;
  const control = new Int32Array(new SharedArrayBuffer((CONTROL_HEADER + ARGS_PER_HELPER * threads) * 4));
  const p: Pool = { threads, memory, kernel, control, helpers: [] };
  p.helpers = Array.from({ length: threads - 1 }, (_, index) => {
    const worker = startWorker(__dirname, 'simd-filter-grad-worker', {
      workerData: { wasmModule, memory, control: control.buffer, index },
    });
    // The helpers idle in Atomics.wait between calls; they must not keep the process alive.
    worker.unref();
    // A helper that fails to start never flags itself ready, so calls stay on the main thread; one that
    // stops later takes its pool with it. Neither crashes the process.
    worker.on('error', (err) => dropPool(p, err instanceof Error ? err.message : String(err)));
    worker.on('exit', (code) => dropPool(p, `a helper thread exited (code ${code})`));
    return worker;
  });
  return p;
}

/** A pool with at least `threads` threads (an existing bigger one is kept). */
function poolFor(threads: number): Pool {
  if (!pool || pool.threads < threads) {
    if (pool) dropPool(pool, 'replaced by a bigger pool', false);
    pool = startPool(threads);
  }
  return pool;
}

/**
 * Starts the helper threads for `threads`-way calls and resolves once they are ready (true), or false
 * if one failed or they were not ready within `timeoutMs` (calls then run on the main thread). Optional:
 * the first multi-threaded call starts them too, but runs alone until they are up.
 */
export async function startSimdFilterGradHelpers(threads: number, timeoutMs = 30_000): Promise<boolean> {
  const p = poolFor(Math.max(1, threads));
  const deadline = Date.now() + timeoutMs;
  while (Atomics.load(p.control, READY) < p.threads - 1) {
    if (p.error !== undefined || Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** Byte offsets in the kernel's memory for one call split into `parts`. */
function layout(g: Pick<FilterGradGeometry, 'n' | 'h' | 'w' | 'c' | 'oh' | 'ow' | 'o' | 'kh' | 'kw'>, parts: number, base: number) {
  const xAt = align16(base + GEOMETRY_INTS * 4);
  const dyAt = align16(xAt + g.n * g.h * g.w * g.c * 4);
  const dwLength = g.kh * g.kw * g.c * g.o;
  const dwAt = align16(dyAt + g.n * g.oh * g.ow * g.o * 4);
  const dwStride = align16(dwLength * 4);
  return { xAt, dyAt, dwAt, dwLength, dwStride, end: dwAt + dwStride * parts };
}

/** Room for __heap_base (66,560 bytes in the current build) with margin. */
const BASE_BOUND = 1 << 20;

/**
 * Whether the kernel handles this shape on `threads` threads: its output tiles are 8 filters wide, and
 * the inputs plus one filter buffer per thread must fit its 2 GiB memory.
 */
export function simdFilterGradSupports(
  g: Pick<FilterGradGeometry, 'n' | 'h' | 'w' | 'c' | 'oh' | 'ow' | 'o' | 'kh' | 'kw'>,
  threads = 1,
): boolean {
  return g.o % 8 === 0 && layout(g, Math.max(1, threads), BASE_BOUND).end <= MAX_PAGES * PAGE_BYTES;
}

/**
 * dW [kh, kw, c, o] = Σ over the batch and output pixels of x patch × dy (NHWC, dilation 1), on
 * `threads` threads. `x` holds n·h·w·c values and `dy` n·oh·ow·o, both row-major NHWC.
 */
export function simdFilterGrad(x: Float32Array, dy: Float32Array, g: FilterGradGeometry, threads = 1): Float32Array {
  if (!simdFilterGradSupports(g, threads)) {
    throw new RangeError(`simdFilterGrad needs a multiple of 8 filters and inputs that fit 2 GiB, got ${g.o} filters`);
  }
  if (x.length !== g.n * g.h * g.w * g.c || dy.length !== g.n * g.oh * g.ow * g.o) {
    throw new RangeError('simdFilterGrad: array lengths do not match the geometry');
  }
  const p = poolFor(Math.max(1, threads));
  const ctl = p.control;
  const helpersReady = p.error === undefined && Atomics.load(ctl, READY) === p.threads - 1;
  const parts = helpersReady ? Math.max(1, Math.min(threads, g.n)) : 1;
  const base = p.kernel.__heap_base.value;
  const at = layout(g, parts, base);
  if (at.end > p.memory.buffer.byteLength) p.memory.grow(Math.ceil((at.end - p.memory.buffer.byteLength) / PAGE_BYTES));
  const heap = new Float32Array(p.memory.buffer);
  heap.set(x, at.xAt / 4);
  heap.set(dy, at.dyAt / 4);
  heap.fill(0, at.dwAt / 4, (at.dwAt + at.dwStride * parts) / 4);
  const imageBytes = (g.h * g.w * g.c + g.oh * g.ow * g.o) * 4;
  const chunk = Math.max(1, Math.floor(BLOCK_BYTES / imageBytes));
  // field order of the C struct Geometry
  new Int32Array(p.memory.buffer, base, GEOMETRY_INTS).set([
    g.n, g.h, g.w, g.c, g.oh, g.ow, g.o, g.kh, g.kw, g.sh, g.sw, g.top, g.left, chunk,
  ]);
  // images [bounds[i], bounds[i + 1]) go to part i; part 0 is this thread's
  const bounds = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * g.n) / parts));
  if (parts > 1) {
    // every helper takes part in the call (done counts all of them); those past `parts` get no images
    for (let h = 1; h < p.threads; h++) {
      const args = h < parts ? [at.xAt, at.dyAt, at.dwAt + h * at.dwStride, bounds[h], bounds[h + 1]] : [0, 0, 0, 0, 0];
      ctl.set([base, ...args], CONTROL_HEADER + (h - 1) * ARGS_PER_HELPER);
    }
    Atomics.store(ctl, 1, 0);
    Atomics.store(ctl, 2, 0);
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
  }
  const started = performance.now();
  p.kernel.filter_grad(base, at.xAt, at.dyAt, at.dwAt, bounds[0], bounds[1]);
  if (parts > 1) {
    const waitMs = Math.max(HELPER_MIN_WAIT_MS, HELPER_WAIT_FACTOR * (performance.now() - started));
    const failure = waitForHelpers(ctl, p.threads - 1, waitMs) ?? (Atomics.load(ctl, 2) > 0 ? 'a helper thread failed' : undefined);
    if (failure) {
      // Compute the whole call here; a stuck helper writes only its own buffer in a memory that is
      // dropped with the pool.
      dropPool(p, failure);
      heap.fill(0, at.dwAt / 4, at.dwAt / 4 + at.dwLength);
      p.kernel.filter_grad(base, at.xAt, at.dyAt, at.dwAt, 0, g.n);
      return heap.slice(at.dwAt / 4, at.dwAt / 4 + at.dwLength);
    }
  }
  const dw = heap.slice(at.dwAt / 4, at.dwAt / 4 + at.dwLength);
  for (let i = 1; i < parts; i++) {
    const from = (at.dwAt + i * at.dwStride) / 4;
    for (let j = 0; j < at.dwLength; j++) dw[j] += heap[from + j];
  }
  return dw;
}

/** Blocks until every helper has finished this call; the reason if one did not within `waitMs`. */
function waitForHelpers(ctl: Int32Array, helpers: number, waitMs: number): string | undefined {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const done = Atomics.load(ctl, 1);
    if (done >= helpers) return undefined;
    if (Date.now() > deadline) return `${helpers - done} helper thread(s) did not finish within ${Math.round(waitMs / 1000)} s`;
    Atomics.wait(ctl, 1, done, Math.min(1000, waitMs));
  }
}
