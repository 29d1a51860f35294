/**
 * Batch norm's training pass on the wasm backend through oneDNN (the optional native addon, as for
 * the convolutions in ./onednn-conv.ts): the kernels of the fused op that src/model/batch-norm.ts
 * defines. oneDNN normalises an NHWC tensor over all axes but the channels in two passes each way, on
 * all the addon's threads, directly on the wasm heap; the ops it replaces take five passes forward and
 * six backward (bench/train-step --onednn, docs/BENCHMARKS.md).
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD } from '../../model/batch-norm';
import type { DnnlConvAddon } from './onednn-conv';

/** [n, h, w, c] of an NHWC tensor; another rank folds its leading axes into n. */
function bnDims(shape: number[]): [number, number, number, number] {
  const c = shape[shape.length - 1];
  if (shape.length === 4) return shape as [number, number, number, number];
  return [tf.util.sizeFromShape(shape) / c, 1, 1, c];
}

function requireFloat32(kernel: string, infos: Record<string, tf.TensorInfo>): void {
  for (const [name, t] of Object.entries(infos)) {
    if (t.dtype !== 'float32') throw new Error(`${kernel}: ${name} must be float32, got ${t.dtype}`);
  }
}

/** Runs f; if it throws, the outputs made for it go back to the heap (the engine never sees them). */
function freeOnThrow(wasm: BackendWasm, outputs: tf.TensorInfo[], f: () => void): void {
  try {
    f();
  } catch (err) {
    outputs.forEach((t) => wasm.disposeData(t.dataId));
    throw err;
  }
}

export function onednnBatchNormConfigs(addon: DnnlConvAddon): tf.KernelConfig[] {
  return [
    {
      kernelName: BATCH_NORM_TRAIN,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { x, gamma, beta } = inputs as unknown as Record<string, tf.TensorInfo>;
        requireFloat32(BATCH_NORM_TRAIN, { x, gamma, beta });
        const wasm = backend as BackendWasm;
        const dims = bnDims(x.shape);
        const c = dims[3];
        // Outputs first: making one may grow the heap, which detaches views taken before.
        const y = wasm.makeOutput(x.shape, 'float32');
        const moments = wasm.makeOutput([2, c], 'float32');
        const view = (t: tf.TensorInfo) => wasm.typedArrayFromHeap(t) as Float32Array;
        const m = view(moments);
        freeOnThrow(wasm, [y, moments], () =>
          addon.batchNorm(view(x), view(y), view(gamma), view(beta), m.subarray(0, c), m.subarray(c), dims, (attrs as { epsilon: number }).epsilon),
        );
        return [y, moments];
      },
    },
    {
      kernelName: BATCH_NORM_TRAIN_GRAD,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        const { dy, x, gamma, moments } = inputs as unknown as Record<string, tf.TensorInfo>;
        requireFloat32(BATCH_NORM_TRAIN_GRAD, { dy, x, gamma, moments });
        const wasm = backend as BackendWasm;
        const dims = bnDims(x.shape);
        const c = dims[3];
        const dx = wasm.makeOutput(x.shape, 'float32');
        const dGamma = wasm.makeOutput([c], 'float32');
        const dBeta = wasm.makeOutput([c], 'float32');
        const view = (t: tf.TensorInfo) => wasm.typedArrayFromHeap(t) as Float32Array;
        const m = view(moments);
        freeOnThrow(wasm, [dx, dGamma, dBeta], () =>
          addon.batchNormBackward(view(x), view(dy), view(gamma), m.subarray(0, c), m.subarray(c), view(dx), view(dGamma), view(dBeta), dims, (attrs as { epsilon: number }).epsilon),
        );
        return [dx, dGamma, dBeta];
      },
    },
  ];
}
