/**
 * Conv2DBackpropFilter for wasm.
 *
 * Float32 filters a multiple of 8 wide (every conv in the encoders) go to the cache-blocked SIMD kernel
 * (./simd-filter-grad.ts: over resnet-mini's layers 2.5x faster than the XNNPACK formulation below with
 * one thread, 3x with two; bench/filter-grad). It splits the batch over as many threads as XNNPACK uses.
 * Other shapes use one XNNPACK convolution with the batch as the reduction axis:
 *
 * Maths: dW[i, j, c, o] = Σ_{n, y, x} xpad[n, y·s + i, x·s + j, c] · dY[n, y, x, o]
 * Reading c as a batch, n as the input channel and dY (transposed to [oh, ow, N, O]) as the filter:
 *   dWᵀ = conv2d(xpadᵀ [C, Hp, Wp, N], dYᵀ [oh, ow, N, O], stride 1, dilation s) → [C, kh, kw, O]
 * This is the same GEMM as im2col(x)ᵀ·dY but packed by XNNPACK's conv path, which on wasm runs
 * ~4x faster than tf.matMul with a transposed, very tall operand and needs no patch buffer.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { wasmThreadCount } from '../wasm-threads';
import { FilterGradGeometry, simdFilterGrad, simdFilterGradSupports } from './simd-filter-grad';
import { AxisPad, asTensor, assertNhwc, cropNegativePads, explicitPad, tapView } from './tensor-utils';

/** dW for a conv2d with the given geometry (NHWC, dilation 1). */
export function conv2dBackpropFilterImpl(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
    const { inHeight, inWidth, outHeight, outWidth, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    let xIn: tf.Tensor4D;
    let pads: [AxisPad, AxisPad];
    let dilation: [number, number];
    if (kh === 1 && kw === 1) {
      // 1x1 (the strided ResNet shortcuts): keep only the pixels the filter saw, then stride 1.
      // [N, oh, ow, C]
      xIn = tapView(x, -top, -left, outHeight, outWidth, sh, sw);
      pads = [[0, 0], [0, 0]];
      dilation = [1, 1];
    } else {
      // Rows read by the forward conv: [−top, (oh − 1)·s + kh − top); pad (or crop) x to exactly that.
      const padH: AxisPad = [top, (outHeight - 1) * sh + kh - top - inHeight];
      const padW: AxisPad = [left, (outWidth - 1) * sw + kw - left - inWidth];
      ({ x: xIn, pads } = cropNegativePads(x, padH, padW));
      dilation = [sh, sw];
    }
    // [C, H, W, N] and [oh, ow, N, O]
    const xT = tf.transpose(xIn, [3, 1, 2, 0]) as tf.Tensor4D;
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D;
    // [C, kh, kw, O]
    const dwT = tf.conv2d(xT, dyT, 1, explicitPad(pads[0], pads[1]), 'NHWC', dilation);
    // [kh, kw, C, O]
    return tf.transpose(dwT, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

/** The SIMD kernel's view of a conv's geometry. */
function filterGradGeometry(info: tf.backend_util.Conv2DInfo): FilterGradGeometry {
  return {
    n: info.batchSize,
    h: info.inHeight,
    w: info.inWidth,
    c: info.inChannels,
    oh: info.outHeight,
    ow: info.outWidth,
    o: info.outChannels,
    kh: info.filterHeight,
    kw: info.filterWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
  };
}

export const conv2dBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs, backend }) => {
    const { x, dy } = inputs as unknown as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    assertNhwc(dataFormat, tf.Conv2DBackpropFilter);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode);
    const geometry = filterGradGeometry(info);
    const threads = wasmThreadCount();
    if (x.dtype === 'float32' && dy.dtype === 'float32' && simdFilterGradSupports(geometry, threads)) {
      // x and dy are views of the wasm heap; the kernel copies them into its own memory
      const wasm = backend as BackendWasm;
      const dw = simdFilterGrad(wasm.typedArrayFromHeap(x) as Float32Array, wasm.typedArrayFromHeap(dy) as Float32Array, geometry, threads);
      return wasm.makeOutput(filterShape, 'float32', undefined, dw);
    }
    return tf.tidy(() =>
      conv2dBackpropFilterImpl(asTensor<tf.Rank.R4>(x), asTensor<tf.Rank.R4>(dy), filterShape, strides, pad, dimRoundingMode),
    );
  },
};
