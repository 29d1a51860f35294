/**
 * DepthwiseConv2dNative backprops for wasm (the stock backend has neither).
 *
 * Forward (multiplier M, stride s): y[n, o, c·M + m] = Σ_k x[n, o·s + k − top, c] · W[k, c, m].
 *  - dX: per channel the same transposed convolution as conv2d (see conv2d-backprop-input.ts): one
 *    stride-1 depthwise conv of dY per output phase with that phase's flipped taps, Σ over m, then
 *    the phases are interleaved (depth-to-space).
 *  - dW[i, j, c, m] = Σ_{n, y, x} xpad[n, y·s + i, x·s + j, c] · dY[n, y, x, c·M + m]: one strided
 *    slice, product and reduction per filter tap (memory-bound, like the forward depthwise conv).
 */
import * as tf from '@tensorflow/tfjs';
import { gatherTaps, interleavePhases, phaseTaps, PhaseTaps, TapRows, tapRows } from './conv2d-backprop-input';
import { AxisPad, asTensor, assertNoDilation, cropNegativePads, explicitPad, tapView } from './tensor-utils';

type Pad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding;

/** One output phase of the depthwise transposed conv; `rows` is W as [kh·kw, C·M]. Returns [N, A, B, C]. */
function depthwisePhase(dy: tf.Tensor4D, rows: TapRows, kw: number, mult: number, ph: PhaseTaps, pw: PhaseTaps, gridH: number, gridW: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, outH, outW, channels] = dy.shape;
    // [tH, tW, C·M, 1]
    const filter = tf.reshape(gatherTaps(rows, kw, ph.k, pw.k), [ph.k.length, pw.k.length, channels, 1]) as tf.Tensor4D;
    const padH: AxisPad = [-ph.first, gridH - outH + ph.first + ph.k.length - 1];
    const padW: AxisPad = [-pw.first, gridW - outW + pw.first + pw.k.length - 1];
    const { x: dyIn, pads } = cropNegativePads(dy, padH, padW);
    // [N, A, B, C·M]
    const out = tf.depthwiseConv2d(dyIn, filter, 1, explicitPad(pads[0], pads[1]));
    if (mult === 1) return out;
    // Σ over the multiplier: [N, A, B, C, M] → [N, A, B, C]
    return tf.sum(tf.reshape(out, [n, gridH, gridW, channels / mult, mult]), 4) as tf.Tensor4D;
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
    const { batchSize, inHeight, inWidth, inChannels, strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
    const mult = filter.shape[3];
    const phasesH = phaseTaps(kh, sh, info.padInfo.top);
    const phasesW = phaseTaps(kw, sw, info.padInfo.left);
    const gridH = Math.ceil(inHeight / sh);
    const gridW = Math.ceil(inWidth / sw);
    // [kh·kw, C·M]
    const rows = tapRows(tf.reshape(filter, [kh * kw, inChannels * mult]));
    const phases: (tf.Tensor4D | null)[] = [];
    for (const ph of phasesH) {
      for (const pw of phasesW) {
        phases.push(ph.k.length > 0 && pw.k.length > 0 ? depthwisePhase(dy, rows, kw, mult, ph, pw, gridH, gridW) : null);
      }
    }
    if (phases.every((t) => t === null)) return tf.zeros(inputShape) as tf.Tensor4D;
    // [N, gridH·sH, gridW·sW, C]
    const grid = sh === 1 && sw === 1 ? (phases[0] as tf.Tensor4D) : interleavePhases(phases, sh, sw);
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
        const seen = tapView(xPad, i, j, outHeight, outWidth, sh, sw);
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
