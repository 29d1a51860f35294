/**
 * Conv2DBackpropInput for wasm, built on the XNNPACK forward convolution.
 *
 * Maths (one spatial axis, stride s, forward pad `top`): y[o] = Σ_k x[o·s + k − top]·W[k], so
 *   dX = conv2d_transpose(dY, W):  dX[s·a + p] = Σ_d dY[a + d] · W[p + top − s·d]ᵀ
 * i.e. every output phase p ∈ [0, s) is a stride-1 correlation of dY with a sub-filter of the flipped,
 * transposed W. We stack the s² phase sub-filters along output channels (zero taps where a phase has
 * fewer), run ONE stride-1 conv2d over dY, and interleave the phases back (depth-to-space). For s = 1
 * this is exactly conv2d(dY, flip(W)ᵀ, 'full'-cropped). Unlike zero-insertion it never multiplies by
 * inserted zeros: a 3x3 stride-2 layer costs 16 taps at the low resolution instead of 36.
 */
import * as tf from '@tensorflow/tfjs';
import { AxisPad, asTensor, assertNhwc, cropNegativePads, explicitPad } from './tensor-utils';

/** How the taps of one axis regroup into a stride-1 correlation over dY. */
export interface PhasePlan {
  /** dY offset of combined tap 0: phase p of output row a reads dY[a + d0 + t]. */
  d0: number;
  /** Combined kernel length. */
  kc: number;
  /** taps[t * s + p]: forward filter index used by phase p at combined tap t, or -1 (zero tap). */
  taps: number[];
}

/** Regroups a length-k filter with stride s and leading pad `top` into s phase sub-filters. */
export function phasePlan(k: number, s: number, top: number): PhasePlan {
  const d0 = Math.ceil((top - k + 1) / s);
  const d1 = Math.floor((s - 1 + top) / s);
  const kc = d1 - d0 + 1;
  const taps: number[] = [];
  for (let t = 0; t < kc; t++) {
    for (let p = 0; p < s; p++) {
      const kk = p + top - s * (d0 + t);
      taps.push(kk >= 0 && kk < k ? kk : -1);
    }
  }
  return { d0, kc, taps };
}

/**
 * The combined filter [kcH, kcW, outC, sH·sW·inC]: channel (p·sW + q)·inC + c of tap (t, u) holds
 * W[kh, kw, c, :] for the phase (p, q), or zeros.
 */
function phaseFilter(filter: tf.Tensor4D, planH: PhasePlan, planW: PhasePlan, sh: number, sw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw, inC, outC] = filter.shape;
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
    // [kh·kw + 1, outC, inC]: the transposed taps plus one zero row for absent taps.
    const rows = tf.concat([tf.reshape(tf.transpose(filter, [0, 1, 3, 2]), [kh * kw, outC, inC]), tf.zeros([1, outC, inC])], 0);
    // [kcH, kcW, sH, sW, outC, inC]
    const gathered = tf.reshape(tf.gather(rows, tf.tensor1d(idx, 'int32')), [planH.kc, planW.kc, sh, sw, outC, inC]);
    // [kcH, kcW, outC, sH·sW·inC]
    return tf.reshape(tf.transpose(gathered, [0, 1, 4, 2, 3, 5]), [planH.kc, planW.kc, outC, sh * sw * inC]) as tf.Tensor4D;
  });
}

/** dX for a conv2d with the given geometry (NHWC, dilation 1). */
export function conv2dBackpropInputImpl(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  inputShape: [number, number, number, number],
  strides: number | [number, number],
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, strides, 1, pad, dimRoundingMode);
    const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, strideHeight: sh, strideWidth: sw } = info;
    const planH = phasePlan(info.filterHeight, sh, info.padInfo.top);
    const planW = phasePlan(info.filterWidth, sw, info.padInfo.left);
    // Phase-grid size: output rows s·a + p for a < A cover [0, H).
    const gridH = Math.ceil(inHeight / sh);
    const gridW = Math.ceil(inWidth / sw);
    const padH: AxisPad = [-planH.d0, gridH - outHeight + planH.d0 + planH.kc - 1];
    const padW: AxisPad = [-planW.d0, gridW - outWidth + planW.d0 + planW.kc - 1];
    const { x: dyIn, pads } = cropNegativePads(dy, padH, padW);
    const combined = phaseFilter(filter, planH, planW, sh, sw);
    // [N, A, B, sH·sW·inC]
    const phases = tf.conv2d(dyIn, combined, 1, explicitPad(pads[0], pads[1]));
    if (sh === 1 && sw === 1) return phases;
    // depth-to-space: [N, A, B, sH, sW, inC] → [N, A, sH, B, sW, inC] → [N, A·sH, B·sW, inC]
    const grid = tf.reshape(tf.transpose(tf.reshape(phases, [batchSize, gridH, gridW, sh, sw, inChannels]), [0, 1, 3, 2, 4, 5]), [
      batchSize,
      gridH * sh,
      gridW * sw,
      inChannels,
    ]) as tf.Tensor4D;
    if (gridH * sh === inHeight && gridW * sw === inWidth) return grid;
    // [N, H, W, inC]
    return tf.slice(grid, [0, 0, 0, 0], [batchSize, inHeight, inWidth, inChannels]);
  });
}

export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const { dy, filter } = inputs as unknown as tf.Conv2DBackpropInputInputs;
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    assertNhwc(dataFormat, tf.Conv2DBackpropInput);
    return tf.tidy(() =>
      conv2dBackpropInputImpl(asTensor<tf.Rank.R4>(dy), asTensor<tf.Rank.R4>(filter), inputShape, strides, pad, dimRoundingMode),
    );
  },
};
