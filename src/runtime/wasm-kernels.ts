/**
 * Training kernels for the wasm backend.
 *
 * The stock wasm backend is fast for inference (XNNPACK) but lacks Conv2DBackpropFilter and the
 * depthwise backprops, its Conv2DBackpropInput is a naive loop ~15x slower than the forward conv, and
 * its MaxPoolGrad is wrong for N > 1 or C > 1, and its per-channel reductions transpose the whole tensor.
 * We register composite kernels built from ops XNNPACK runs fast (see ./kernels/*), and for the filter
 * gradient a hand-written SIMD kernel (./kernels/simd/filter-grad.c) where XNNPACK's GEMM is a poor
 * fit (a tiny output and a batch-long reduction). Registration
 * replaces any existing wasm kernel of the same name and remembers it so tests and the benchmark can
 * restore the stock set (unregisterWasmTrainingKernels). It also swaps in leaner batch-norm and mean
 * gradients on wasm (./kernels/batch-norm-grad.ts). The encoders' batch-norm layers train without
 * either (src/model/batch-norm.ts has its own closed-form gradients).
 */
import * as tf from '@tensorflow/tfjs';
// Load the stock wasm kernels first: registering ours before them would let theirs overwrite ours.
import '@tensorflow/tfjs-backend-wasm';
import { leanGradientConfigs } from './kernels/batch-norm-grad';
import { conv2dBackpropFilterConfig } from './kernels/conv2d-backprop-filter';
import { conv2dBackpropInputConfig } from './kernels/conv2d-backprop-input';
import { depthwiseBackpropFilterConfig, depthwiseBackpropInputConfig } from './kernels/depthwise-backprop';
import { sameTypeCastConfig, sharedIdentityConfig } from './kernels/identity';
import { leadingReduceConfigs } from './kernels/leading-axes-reduce';
import { maxPoolGradConfig } from './kernels/max-pool-grad';
import { DnnlConvAddon, onednnConvConfigs } from './kernels/onednn-conv';
import { onednnBatchNormConfigs } from './kernels/onednn-batch-norm';

const TRAINING_KERNELS: readonly tf.KernelConfig[] = [
  conv2dBackpropInputConfig,
  conv2dBackpropFilterConfig,
  depthwiseBackpropInputConfig,
  depthwiseBackpropFilterConfig,
  maxPoolGradConfig,
  // Sum and Mean over leading axes (per-channel statistics) as XNNPACK average pools; they wrap the
  // stock kernels for every other reduction, so they are built from those at load time.
  ...leadingReduceConfigs(),
  // Identity (the tape's copy of every saved tensor) shares memory instead of copying.
  sharedIdentityConfig(tf.getKernel(tf.Identity, 'wasm') as tf.KernelConfig),
  // So does a Cast to the same dtype (the Relu and Sum gradients make one per call).
  sameTypeCastConfig(tf.getKernel(tf.Cast, 'wasm') as tf.KernelConfig),
];

/** Stock kernels displaced by ours (undefined where wasm had none); set while ours are registered. */
let displaced: Map<string, tf.KernelConfig | undefined> | undefined;
/** Stock gradient configs displaced by the lean wasm gradients. */
let displacedGradients: tf.GradConfig[] = [];

/** Names of the kernels this module provides for wasm. */
export function wasmTrainingKernelNames(): string[] {
  return TRAINING_KERNELS.map((k) => k.kernelName);
}

/**
 * Registers the training kernels for 'wasm' (idempotent; safe before or after tf.setBackend).
 * `skip` leaves the named kernels stock, for A/B benchmarks (bench/train-step --stock).
 */
export function registerWasmTrainingKernels(skip: readonly string[] = []): void {
  if (displaced) return;
  displaced = new Map();
  for (const config of TRAINING_KERNELS.filter((k) => !skip.includes(k.kernelName))) {
    const stock = tf.getKernel(config.kernelName, 'wasm');
    displaced.set(config.kernelName, stock);
    if (stock) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
  // Lean batch-norm / mean gradients; they delegate to the stock ones on other backends.
  const lean = leanGradientConfigs();
  displacedGradients = lean.map((g) => tf.getGradient(g.kernelName)).filter((g): g is tf.GradConfig => g !== undefined);
  lean.forEach((g) => tf.registerGradient(g));
}

/**
 * Puts oneDNN's convolutions (./kernels/onednn-conv.ts) in front of the wasm ones: forward, input and
 * filter gradients; and adds the fused training batch norm (./kernels/onednn-batch-norm.ts), which the
 * encoders' batch-norm layers then use. Call after registerWasmTrainingKernels, whose gradient kernels
 * become the fallback; unregisterWasmTrainingKernels removes all of them.
 */
export function registerOnednnConvKernels(addon: DnnlConvAddon): void {
  if (!displaced) throw new Error('register the wasm training kernels first');
  for (const config of [...onednnConvConfigs(addon, (name) => tf.getKernel(name, 'wasm')), ...onednnBatchNormConfigs(addon)]) {
    // Remember the stock kernel only: a training kernel it wraps is not one to restore.
    if (!displaced.has(config.kernelName)) displaced.set(config.kernelName, tf.getKernel(config.kernelName, 'wasm'));
    if (tf.getKernel(config.kernelName, 'wasm')) tf.unregisterKernel(config.kernelName, 'wasm');
    tf.registerKernel(config);
  }
}

/** Restores the stock wasm kernel set (for baselines and A/B tests). */
export function unregisterWasmTrainingKernels(): void {
  if (!displaced) return;
  const wasmBackend = tf.engine().registry['wasm'];
  for (const [name, stock] of displaced) {
    tf.unregisterKernel(name, 'wasm');
    if (!stock) continue;
    tf.registerKernel(stock);
    // The backend runs setup funcs only at initialisation; a kernel re-added later needs its own call.
    if (wasmBackend && stock.setupFunc) stock.setupFunc(wasmBackend);
  }
  displacedGradients.forEach((g) => tf.registerGradient(g));
  displacedGradients = [];
  displaced = undefined;
}

/** True while the training kernels are registered. */
export function wasmTrainingKernelsRegistered(): boolean {
  return displaced !== undefined;
}
