/**
 * Picks the tfjs backend once per thread: tensorflow (tfjs-node-gpu, then tfjs-node) → wasm → cpu.
 *
 * tfjs-node and tfjs-node-gpu are optional dependencies: their install downloads libtensorflow and
 * fails on machines without internet access, in which case `require` fails here and we fall through.
 */
import * as tf from '@tensorflow/tfjs';
import { DnnlConvAddon, loadDnnlConv } from './kernels/onednn-conv';
import { registerOnednnConvKernels, registerWasmTrainingKernels } from './wasm-kernels';
import { startSimdFilterGradHelpers } from './kernels/simd-filter-grad';
import { prepareWasmThreads, wasmThreadCount, withThreadedCoreCount } from './wasm-threads';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
export type BackendChoice = BackendName | 'auto';

export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/**
 * Who runs the wasm backend's convolutions: 'onednn' (the optional native addon likeness-dnnl-conv,
 * built where libdnnl-dev is installed; an error where it is not), 'onednn-bf16' (the same with the
 * convolutions' inputs in bfloat16, on CPUs with AVX512-BF16 or AMX; an error elsewhere), 'wasm'
 * (XNNPACK and our wasm gradient kernels), 'auto' (oneDNN, float32, where the addon loads).
 */
export type ConvKernelChoice = 'auto' | 'onednn' | 'onednn-bf16' | 'wasm';
export const CONV_KERNEL_CHOICES: readonly ConvKernelChoice[] = ['auto', 'onednn', 'onednn-bf16', 'wasm'];

export interface BackendInfo {
  /** Backend tfjs runs on, as tf.getBackend() reports it. */
  name: BackendName;
  /** Which package provided it (e.g. '@tensorflow/tfjs-node-gpu'). */
  provider: string;
  /** Why earlier candidates were skipped, for `likeness info` and the start-up log. */
  skipped: string[];
  /** XNNPACK threads of the wasm backend (1 unless initBackend was asked for more). */
  threads: number;
  /** Who runs the convolutions on wasm ('oneDNN 2.6.3', 'oneDNN 2.6.3, bf16 inputs' or 'wasm'); undefined on other backends. */
  convolutions?: string;
}

export interface BackendOptions {
  /**
   * Threads for the wasm backend's convolutions and matrix products (its threaded build); 1 keeps the
   * single-threaded build. Ignored by the other backends (tfjs-node threads on its own).
   */
  wasmThreads?: number;
  /** The wasm backend's convolutions (default 'auto'). */
  convKernels?: ConvKernelChoice;
  /** Loads the oneDNN addon, or says why it cannot (default loadDnnlConv; tests stand in a missing one). */
  loadAddon?: () => DnnlConvAddon | string;
}

let chosen: BackendInfo | undefined;

function tryRequire(pkg: string): string | undefined {
  try {
    require(pkg);
    return undefined;
  } catch (err) {
    return `${pkg}: ${(err as Error).message.split('\n')[0]}`;
  }
}

async function tryTensorflow(skipped: string[]): Promise<BackendInfo | undefined> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    const failure = tryRequire(pkg);
    if (failure) {
      skipped.push(failure);
      continue;
    }
    if (await tf.setBackend('tensorflow')) return { name: 'tensorflow', provider: pkg, skipped, threads: 1 };
    skipped.push(`${pkg}: loaded but the tensorflow backend did not initialise`);
  }
  return undefined;
}

async function tryWasm(skipped: string[], threads: number, convKernels: ConvKernelChoice, loadAddon: () => DnnlConvAddon | string): Promise<BackendInfo | undefined> {
  const failure = tryRequire('@tensorflow/tfjs-backend-wasm');
  if (failure) {
    skipped.push(failure);
    return undefined;
  }
  // The wasm backend lacks several gradient kernels; the training kernels module registers them.
  registerWasmTrainingKernels();
  if (threads > 1) prepareWasmThreads(threads);
  if (await withThreadedCoreCount(() => tf.setBackend('wasm'))) {
    // The filter-gradient kernel's helper threads, started now so training uses them from its first step.
    if (wasmThreadCount() > 1) await startSimdFilterGradHelpers(wasmThreadCount());
    const convolutions = convKernels === 'wasm' ? 'wasm' : useOnednn(loadAddon(), skipped, convKernels, wasmThreadCount());
    return { name: 'wasm', provider: '@tensorflow/tfjs-backend-wasm', skipped, threads: wasmThreadCount(), convolutions };
  }
  skipped.push('@tensorflow/tfjs-backend-wasm: did not initialise');
  return undefined;
}

/**
 * Puts oneDNN's convolutions in front of wasm's, with as many threads as the wasm backend has (an
 * inference worker: 1). Returns who runs the convolutions; a choice other than 'auto' turns a missing
 * addon into an error.
 */
function useOnednn(addon: DnnlConvAddon | string, skipped: string[], choice: Exclude<ConvKernelChoice, 'wasm'>, threads: number): string {
  if (typeof addon === 'string') {
    if (choice !== 'auto') throw new Error(`--conv-kernels ${choice}: ${addon} (build it: apt-get install libdnnl-dev, then npm ci)`);
    skipped.push(addon);
    return 'wasm';
  }
  const bf16 = choice === 'onednn-bf16';
  // An addon built before setConvPrecision existed still serves float32; bf16 needs a rebuild.
  if (typeof addon.setConvPrecision !== 'function') {
    if (bf16) throw new Error(`--conv-kernels ${choice}: this build of likeness-dnnl-conv predates bf16 (rebuild it: npm rebuild likeness-dnnl-conv)`);
  } else {
    try {
      addon.setConvPrecision(bf16 ? 'bf16' : 'f32');
    } catch (err) {
      throw new Error(`--conv-kernels ${choice}: ${(err as Error).message}`);
    }
  }
  addon.setThreads(threads);
  registerOnednnConvKernels(addon);
  return `oneDNN ${addon.version()}${bf16 ? ', bf16 inputs' : ''}`;
}

/**
 * Initialises the backend for this thread (idempotent). `choice` 'auto' walks the chain; a named
 * backend is required and its absence is an error.
 */
export async function initBackend(choice: BackendChoice = 'auto', options: BackendOptions = {}): Promise<BackendInfo> {
  if (chosen) return chosen;
  const skipped: string[] = [];
  let info: BackendInfo | undefined;
  if (choice === 'auto' || choice === 'tensorflow') info = await tryTensorflow(skipped);
  if (!info && (choice === 'auto' || choice === 'wasm')) info = await tryWasm(skipped, options.wasmThreads ?? 1, options.convKernels ?? 'auto', options.loadAddon ?? loadDnnlConv);
  if (!info && (choice === 'auto' || choice === 'cpu')) {
    await tf.setBackend('cpu');
    info = { name: 'cpu', provider: '@tensorflow/tfjs-backend-cpu', skipped, threads: 1 };
  }
  if (!info) throw new Error(`backend '${choice}' is not available: ${skipped.join('; ')}`);
  await tf.ready();
  chosen = info;
  return info;
}

/** The backend picked by initBackend, or undefined before it ran. */
export function currentBackend(): BackendInfo | undefined {
  return chosen;
}

/** The most memory tfjs's wasm build can grow to (its declared maximum, all a wasm32 instance addresses). */
export const WASM_MAX_HEAP_BYTES = 4 * 1024 ** 3;

/** Bytes of the wasm backend's heap now; undefined on other backends. */
export function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const wasm = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm;
  return wasm?.HEAPU8?.buffer.byteLength;
}

/**
 * Whether `err` is the wasm heap running out. Emscripten reports a failed allocation as `Aborted()`,
 * or, when the null pointer it returned is then written, as a memory access out of bounds; neither
 * names memory, so we look at how large the heap has grown (measured: a ResNet-18 SupCon step of 128
 * images × 2 views failed this way, 64 × 2 fits).
 */
export function isWasmOutOfMemory(err: unknown, heapBytes = wasmHeapBytes()): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return heapBytes !== undefined && heapBytes >= 0.75 * WASM_MAX_HEAP_BYTES && /Aborted\(|memory access out of bounds|out of memory/i.test(message);
}
