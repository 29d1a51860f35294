/**
 * Identity (and Cast to the same dtype, below) for wasm that share the input's memory instead of
 * copying it.
 *
 * The stock wasm Identity copies the whole tensor. tfjs calls it for every tensor the gradient tape
 * saves (engine.clone in saveTensorsForBackwardMode), so a training step made ~280 full copies of
 * activations and weights: about 5% of a resnet-mini step. Tensors are immutable in tfjs (a Variable's
 * assign swaps in new memory), so sharing with a reference count is safe; it is what the cpu backend's
 * Identity and every backend's Reshape already do.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** An output that is `x` itself: one more reference to its memory, no copy. */
function shareInput(x: tf.TensorInfo, backend: BackendWasm): tf.TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export function sharedIdentityConfig(stock: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName: tf.Identity,
    backendName: 'wasm',
    setupFunc: stock.setupFunc,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      // strings live outside the wasm heap; the stock kernel handles them
      if (x.dtype === 'string') return stock.kernelFunc(args);
      return shareInput(x, args.backend as BackendWasm);
    },
  };
}

/**
 * Cast for wasm that shares memory when the dtype does not change. tfjs-core's Relu and Sum gradients
 * cast float32 masks and ones to float32; the stock kernel copies the whole tensor each time (a full
 * activation pass per ReLU in every backward pass).
 */
export function sameTypeCastConfig(stock: tf.KernelConfig): tf.KernelConfig {
  return {
    kernelName: tf.Cast,
    backendName: 'wasm',
    setupFunc: stock.setupFunc,
    kernelFunc: (args) => {
      const x = args.inputs.x as tf.TensorInfo;
      if (x.dtype === 'string' || x.dtype !== (args.attrs as unknown as tf.CastAttrs).dtype) return stock.kernelFunc(args);
      return shareInput(x, args.backend as BackendWasm);
    },
  };
}
