/**
 * DepthwiseConv2dNative backprops for wasm (the stock backend has neither).
 *
 * Forward (multiplier M, stride s): y[n, o, c·M + m] = Σ_k x[n, o·s + k − top, c] · W[k, c, m].
 *  - dX: per channel the same transposed convolution as conv2d (see conv2d-backprop-input.ts), so we
 *    reuse its phase plan: one depthwise conv over dY [N, oh, ow, C·M] with multiplier s² emits every
 *    output phase, then Σ over m and depth-to-space.
 *  - dW[i, j, c, m] = Σ_{n, y, x} xpad[n, y·s + i, x·s + j, c] · dY[n, y, x, c·M + m]: one strided
 *    slice, product and reduction per filter tap (memory-bound, like the forward depthwise conv).
 */
import * as tf from '@tensorflow/tfjs';
import { phasePlan, PhasePlan } from './conv2d-backprop-input';
import { AxisPad, asTensor, assertNoDilation, cropNegativePads, explicitPad } from './tensor-utils';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

/** Depthwise phase filter [kcH, kcW, C·M, sH·sW]: channel c·M + m, phase (p, q) → W[kh, kw, c, m] or 0. */
function depthwisePhaseFilter(filter: tf.Tensor4D, planH: PhasePlan, planW: PhasePlan, sh: number, sw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, inC, mult] = filter.shape;
    const zeroRow = kh * kw;
    const idx: number[] = [];
    for (let t = 0; t < planH.kc; t++) {
      for (let u = 0; u < planW.kc; u++) {
        for (let p = 0; p < sh; p++) {
          for (let q = 0; q < sw; q++) {
            const a = planH.taps[t * sh + p];
            const b = planW.taps[u * sw + q];
            idx.push(a >= 0 && b >= 0 ? a * kw + b : zeroRow);
          }
        }
      }
    }
    // [kh·kw + 1, C·M]: taps plus a zero row for absent ones.
    const rows = tf.concat([tf.reshape(filter, [kh * kw, inC * mult]), tf.zeros([1, inC * mult])], 0);
    // [kcH, kcW, sH, sW, C·M]
    const gathered = tf.reshape(tf.gather(rows, tf.tensor1d(idx, 'int32')), [planH.kc, planW.kc, sh, sw, inC * mult]);
    // [kcH, kcW, C·M, sH·sW]
    return tf.reshape(tf.transpose(gathered, [0, 1, 4, 2, 3]), [planH.kc, planW.kc, inC * mult, sh * sw]) as tf.Tensor4D;
  });
}

/** dX of a depthwise conv2d (NHWC, dilation 1). */
export function depthwiseBackpropInputImpl(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  inputShape: [number, number, number, number],
  strides: number | [number, number],
  pad: Pad,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, strides, 1, pad, dimRoundingMode, true);
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight: sh, strideWidth: sw } = info;
    const mult = filter.shape[3];
    const planH = phasePlan(info.filterHeight, sh, info.padInfo.top);
    const planW = phasePlan(info.filterWidth, sw, info.padInfo.left);
    const gridH = Math.ceil(inHeight / sh);
    const gridW = Math.ceil(inWidth / sw);
    const padH: AxisPad = [-planH.d0, gridH - outHeight + planH.d0 + planH.kc - 1];
    const padW: AxisPad = [-planW.d0, gridW - outWidth + planW.d0 + planW.kc - 1];
    const { x: dyIn, pads } = cropNegativePads(dy, padH, padW);
    const combined = depthwisePhaseFilter(filter, planH, planW, sh, sw);
    // [N, A, B, C·M·sH·sW]
    const phases = tf.depthwiseConv2d(dyIn, combined, 1, explicitPad(pads[0], pads[1]));
    // Σ over the multiplier: [N, A, B, C, M, sH·sW] → [N, A, B, C, sH, sW]
    const perChannel = tf.reshape(phases, [batchSize, gridH, gridW, inChannels, mult, sh * sw]);
    const summed = mult === 1 ? perChannel : tf.sum(perChannel, 4, true);
    // depth-to-space: [N, A, B, C, sH, sW] → [N, A, sH, B, sW, C] → [N, A·sH, B·sW, C]
    const grid = tf.reshape(tf.transpose(tf.reshape(summed, [batchSize, gridH, gridW, inChannels, sh, sw]), [0, 1, 4, 2, 5, 3]), [
      batchSize,
      gridH * sh,
      gridW * sw,
      inChannels,
    ]) as tf.Tensor4D;
    if (gridH * sh === inHeight && gridW * sw === inWidth) return grid;
    // [N, H, W, C]
    return tf.slice(grid, [0, 0, 0, 0], [batchSize, inHeight, inWidth, inChannels]);
  });
}

/** dW of a depthwise conv2d (NHWC, dilation 1). */
export function depthwiseBackpropFilterImpl(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  strides: number | [number, number],
  pad: Pad,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode, true);
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
    const mult = filterShape[3];
    const { top, left } = info.padInfo;
    const padH: AxisPad = [top, (outHeight - 1) * sh + kh - top - inHeight];
    const padW: AxisPad = [left, (outWidth - 1) * sw + kw - left - inWidth];
    const { x: xIn, pads } = cropNegativePads(x, padH, padW);
    // [N, (oh − 1)·s + kh, (ow − 1)·s + kw, C]
    const xPad = tf.pad(xIn, explicitPad(pads[0], pads[1]));
    // [N, oh, ow, C, M]
    const dy5 = tf.reshape(dy, [batchSize, outHeight, outWidth, inChannels, mult]);
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        // [N, oh, ow, C]: the input pixels tap (i, j) saw.
        const seen = tf.stridedSlice(xPad, [0, i, j, 0], [batchSize, i + (outHeight - 1) * sh + 1, j + (outWidth - 1) * sw + 1, inChannels], [1, sh, sw, 1]);
        // [C, M]
        taps.push(tf.sum(tf.mul(tf.expandDims(seen, 4), dy5), [0, 1, 2]));
      }
    }
    // [kh, kw, C, M]
    return tf.reshape(tf.stack(taps), [kh, kw, inChannels, mult]) as tf.Tensor4D;
  });
}

export const depthwiseBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const { dy, filter } = inputs as unknown as tf.DepthwiseConv2dNativeBackpropInputInputs;
    const { strides, dilations, pad, dimRoundingMode, inputShape } = attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
    assertNoDilation(dilations, tf.DepthwiseConv2dNativeBackpropInput);
    return tf.tidy(() =>
      depthwiseBackpropInputImpl(asTensor<tf.Rank.R4>(dy, 'dy'), asTensor<tf.Rank.R4>(filter, 'filter'), inputShape, strides, pad, dimRoundingMode),
    );
  },
};

export const depthwiseBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const { x, dy } = inputs as unknown as tf.DepthwiseConv2dNativeBackpropFilterInputs;
    const { strides, dilations, pad, dimRoundingMode, filterShape } = attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
    assertNoDilation(dilations, tf.DepthwiseConv2dNativeBackpropFilter);
    return tf.tidy(() =>
      depthwiseBackpropFilterImpl(asTensor<tf.Rank.R4>(x, 'x'), asTensor<tf.Rank.R4>(dy, 'dy'), filterShape, strides, pad, dimRoundingMode),
    );
  },
};
