/**
 * Conv2DBackpropInput for wasm, built on the XNNPACK forward convolution.
 *
 * Maths (one spatial axis, stride s, forward pad `top`): y[o] = Σ_k x[o·s + k − top]·W[k], so
 *   dX = conv2d_transpose(dY, W):  dX[s·a + p] = Σ_d dY[a + d] · W[p + top − s·d]ᵀ
 * i.e. each output phase p ∈ [0, s) is a stride-1 correlation of dY with a sub-filter of the flipped,
 * transposed W (polyphase / sub-pixel decomposition). We run one stride-1 conv2d per phase with only
 * its own taps (the s² phases together do exactly the forward conv's multiply-adds, never multiplying
 * by inserted zeros) and interleave the phases (depth-to-space). For s = 1 this is the single conv
 * dX = conv2d(dY, flip(W)ᵀ) with 'full'-style padding cropped to the input size.
 */
import * as tf from '@tensorflow/tfjs';
import { AxisPad, asTensor, assertNhwc, cropNegativePads, explicitPad } from './tensor-utils';

/** The taps of one output phase along one axis: dX[s·a + p] = Σ_t dY[a + first + t] · W[k[t]]. */
export interface PhaseTaps {
  /** dY offset of the phase's first tap. */
  first: number;
  /** Forward filter indices, in dY order (descending k: the flip). Empty if the phase gets nothing. */
  k: number[];
}

/** Splits a length-kSize filter with stride s and leading pad `top` into s phases. */
export function phaseTaps(kSize: number, s: number, top: number): PhaseTaps[] {
  const phases: PhaseTaps[] = [];
  for (let p = 0; p < s; p++) {
    // k = p + top − s·d ∈ [0, kSize)  ⇔  d ∈ [ceil((p + top − kSize + 1)/s), floor((p + top)/s)]
    const dFirst = Math.ceil((p + top - kSize + 1) / s);
    const dLast = Math.floor((p + top) / s);
    const k: number[] = [];
    for (let d = dFirst; d <= dLast; d++) k.push(p + top - s * d);
    phases.push({ first: dFirst, k });
  }
  return phases;
}

/** Filter taps as rows: `data` holds [kh·kw, ...rest] (one row of prod(rest) values per tap), read once per kernel call. */
export interface TapRows {
  data: Float32Array;
  rest: number[];
}

/** Reads a [kh·kw, ...rest] tensor's values once, so that each phase copies its taps in plain JS. */
export function tapRows(rows: tf.Tensor): TapRows {
  return { data: rows.dataSync() as Float32Array, rest: rows.shape.slice(1) };
}

/**
 * Gathers filter taps W[kh[t], kw[u]] into a [kh.length, kw.length, ...rest] filter. Each tap is one
 * contiguous row, so this is a row copy; wasm's GatherV2 walks element by element and took about 10%
 * of a ResNet-18 training step (e.g. 36 ms per [9, 256, 256] filter, bench/train-step --profile).
 */
export function gatherTaps(rows: TapRows, kw: number, tapsH: number[], tapsW: number[]): tf.Tensor {
  const size = rows.rest.reduce((a, b) => a * b, 1);
  const out = new Float32Array(tapsH.length * tapsW.length * size);
  let at = 0;
  for (const a of tapsH) {
    for (const b of tapsW) {
      const from = (a * kw + b) * size;
      out.set(rows.data.subarray(from, from + size), at);
      at += size;
    }
  }
  return tf.tensor(out, [tapsH.length, tapsW.length, ...rows.rest]);
}

/**
 * One phase: stride-1 conv of dY with that phase's sub-filter, padded so the output covers the
 * phase grid [gridH, gridW]. `rows` is W transposed to [kh·kw, O, C].
 */
function phaseConv(dy: tf.Tensor4D, rows: TapRows, kw: number, ph: PhaseTaps, pw: PhaseTaps, gridH: number, gridW: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, outH, outW, outC] = dy.shape;
    // [tH, tW, O, C]
    const filter = gatherTaps(rows, kw, ph.k, pw.k) as tf.Tensor4D;
    // Output a reads dY[a + first + t]: pad `−first` before, and enough after to reach gridH rows.
    const padH: AxisPad = [-ph.first, gridH - outH + ph.first + ph.k.length - 1];
    const padW: AxisPad = [-pw.first, gridW - outW + pw.first + pw.k.length - 1];
    const { x: dyIn, pads } = cropNegativePads(dy, padH, padW);
    // [N, gridH, gridW, C]
    return tf.conv2d(dyIn, filter, 1, explicitPad(pads[0], pads[1]));
  });
}

/** Interleaves phase outputs [p·sW + q] (each [N, A, B, C]) into [N, A·sH, B·sW, C]. */
export function interleavePhases(phases: (tf.Tensor4D | null)[], sh: number, sw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const present = phases.filter((t): t is tf.Tensor4D => t !== null);
    const [n, a, b, c] = present[0].shape;
    if (present.length === 1) {
      // One non-empty phase (e.g. 1x1 stride 2): zero-insert with a single 4D pad.
      const at = phases.findIndex((t) => t !== null);
      const p = Math.floor(at / sw);
      const q = at % sw;
      const padded = tf.pad(tf.reshape(present[0], [n * a, 1, b, c]), [
        [0, 0],
        [p, sh - 1 - p],
        [0, 0],
        [q * c, (sw - 1 - q) * c],
      ]);
      return tf.reshape(padded, [n, a * sh, b * sw, c]);
    }
    // [N, A, B, sH·sW·C], then depth-to-space viewed as a 4D transpose:
    // [N·A, B, sH, sW·C] → [N·A, sH, B, sW·C] = [N, A·sH, B·sW, C]
    const stacked = tf.concat(phases.map((t) => t ?? tf.zeros([n, a, b, c])), 3);
    return tf.reshape(tf.transpose(tf.reshape(stacked, [n * a, b, sh, sw * c]), [0, 2, 1, 3]), [n, a * sh, b * sw, c]);
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
    const { batchSize, inHeight, inWidth, inChannels, outChannels, strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
    const phasesH = phaseTaps(kh, sh, info.padInfo.top);
    const phasesW = phaseTaps(kw, sw, info.padInfo.left);
    // Phase grid: rows s·a + p for a < gridH cover [0, H).
    const gridH = Math.ceil(inHeight / sh);
    const gridW = Math.ceil(inWidth / sw);
    // [kh·kw, O, C]: taps of Wᵀ
    const rows = tapRows(tf.reshape(tf.transpose(filter, [0, 1, 3, 2]), [kh * kw, outChannels, inChannels]));
    const phases: (tf.Tensor4D | null)[] = [];
    for (const ph of phasesH) {
      for (const pw of phasesW) {
        phases.push(ph.k.length > 0 && pw.k.length > 0 ? phaseConv(dy, rows, kw, ph, pw, gridH, gridW) : null);
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

export const conv2dBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const { dy, filter } = inputs as unknown as tf.Conv2DBackpropInputInputs;
    const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    assertNhwc(dataFormat, tf.Conv2DBackpropInput);
    return tf.tidy(() =>
      conv2dBackpropInputImpl(asTensor<tf.Rank.R4>(dy, 'dy'), asTensor<tf.Rank.R4>(filter, 'filter'), inputShape, strides, pad, dimRoundingMode),
    );
  },
};
