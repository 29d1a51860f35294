/**
 * A faster Conv2DBackpropFilter for the plain cpu backend.
 *
 * The stock cpu kernel reads every element through TensorBuffer.get (~3M multiply-adds/s here), so
 * one training step of even a tiny ResNet takes tens of seconds. This kernel computes the same sum,
 *
 *   dW[i, j, c, o] = Σ_{n, y, x} x[n, y·s_h + i − top, x·s_w + j − left, c] · dY[n, y, x, o]
 *
 * over flat typed arrays with the output channel innermost (contiguous in dW and dY), which is about
 * 100x faster. NHWC only; any other layout falls through to the stock kernel. Training registers it
 * when it runs on the cpu backend (the wasm training kernels live in src/runtime); the maths is the
 * stock kernel's, checked against it in test/train/cpu-conv-filter-grad.test.ts.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

type CpuBackend = tf.KernelBackend & {
  data: { get(id: tf.DataId): { values: tf.backend_util.BackendValues } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: tf.backend_util.BackendValues): tf.TensorInfo;
};

let stock: tf.KernelConfig | undefined;

function kernelFunc({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW' || x.dtype !== 'float32' || dy.dtype !== 'float32') {
    return stock!.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  }
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, 'channelsLast');
  const cpu = backend as CpuBackend;
  const xv = cpu.data.get(x.dataId).values as Float32Array;
  const dyv = cpu.data.get(dy.dataId).values as Float32Array;
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: O, filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const acc = new Float64Array(KH * KW * C * O);
  for (let n = 0; n < N; n++) {
    for (let oy = 0; oy < OH; oy++) {
      for (let ox = 0; ox < OW; ox++) {
        const dyOff = ((n * OH + oy) * OW + ox) * O;
        for (let i = 0; i < KH; i++) {
          const iy = oy * SH + i - top;
          if (iy < 0 || iy >= H) continue;
          for (let j = 0; j < KW; j++) {
            const ix = ox * SW + j - left;
            if (ix < 0 || ix >= W) continue;
            const xOff = ((n * H + iy) * W + ix) * C;
            const wOff = (i * KW + j) * C * O;
            for (let c = 0; c < C; c++) {
              const v = xv[xOff + c];
              if (v === 0) continue;
              const wo = wOff + c * O;
              for (let o = 0; o < O; o++) acc[wo + o] += v * dyv[dyOff + o];
            }
          }
        }
      }
    }
  }
  return cpu.makeTensorInfo([KH, KW, C, O], 'float32', Float32Array.from(acc));
}

/** Installs the fast kernel on the cpu backend (idempotent). */
export function registerFastCpuConvFilterGrad(): void {
  if (stock) return;
  const current = tf.getKernel('Conv2DBackpropFilter', 'cpu');
  if (!current) throw new Error('the cpu backend has no Conv2DBackpropFilter kernel to replace');
  stock = current;
  tf.unregisterKernel('Conv2DBackpropFilter', 'cpu');
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'cpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

/** Puts the stock kernel back. */
export function unregisterFastCpuConvFilterGrad(): void {
  if (!stock) return;
  tf.unregisterKernel('Conv2DBackpropFilter', 'cpu');
  tf.registerKernel(stock);
  stock = undefined;
}
