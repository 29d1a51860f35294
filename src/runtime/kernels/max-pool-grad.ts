/**
 * MaxPoolGrad for wasm. The stock tfjs 4.22 wasm kernel mixes up batch/channel offsets (wrong for
 * N > 1 or C > 1; see test/runtime/wasm-kernels.test.ts), so it is replaced by a composite.
 *
 * Maths: dX[i] = Σ_{windows o whose first maximum (scan order) sits at i} dY[o]. Per filter tap
 * (i, j) in scan order: the tap's pixels [N, oh, ow, C] win where they equal the window max and no
 * earlier tap won; the winners' dY is scattered back (zero-insert by the stride, shift by the tap).
 */
import * as tf from '@tensorflow/tfjs';
import { interleavePhases } from './conv2d-backprop-input';
import { asTensor, cropNegativePads, explicitPad, tapView } from './tensor-utils';

/** Places v [N, oh, ow, C] at rows o·sH + offH, cols o·sW + offW of a zero [N, H, W, C] tensor. */
function scatterTap(v: tf.Tensor4D, sh: number, sw: number, offH: number, offW: number, h: number, w: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [, oh, ow] = v.shape;
    const phases: (tf.Tensor4D | null)[] = Array.from({ length: sh * sw }, (_, k) => (k === 0 ? v : null));
    // [N, oh·sH, ow·sW, C] with v at (o·s, p·s)
    const grid = sh === 1 && sw === 1 ? v : interleavePhases(phases, sh, sw);
    const { x, pads } = cropNegativePads(grid, [offH, h - oh * sh - offH], [offW, w - ow * sw - offW]);
    return pads[0][0] + pads[0][1] + pads[1][0] + pads[1][1] > 0 ? tf.pad(x, explicitPad(pads[0], pads[1])) : x;
  });
}

export function maxPoolGradImpl(
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  output: tf.Tensor4D,
  filterSize: number | [number, number],
  strides: number | [number, number],
  pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding,
  dimRoundingMode?: 'floor' | 'round' | 'ceil',
): tf.Tensor4D {
  return tf.tidy(() => {
    const info = tf.backend_util.computePool2DInfo(x.shape, filterSize, strides, 1, pad, dimRoundingMode);
    const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
    const { top, left } = info.padInfo;
    // Padding never wins: pad with −∞. [N, H + pads, W + pads, C]
    const xPad = tf.pad(x, explicitPad([top, Math.max(0, (oh - 1) * sh + info.filterHeight - top - h)], [left, Math.max(0, (ow - 1) * sw + info.filterWidth - left - w)]), -Infinity);
    let taken = tf.zerosLike(output).cast('bool');
    let dx = tf.zeros(x.shape) as tf.Tensor4D;
    for (let i = 0; i < info.filterHeight; i++) {
      for (let j = 0; j < info.filterWidth; j++) {
        // [N, oh, ow, C]: the pixel this tap sees in every window
        const seen = tapView(xPad, i, j, oh, ow, sh, sw);
        const wins = tf.logicalAnd(tf.equal(seen, output), tf.logicalNot(taken));
        taken = tf.logicalOr(taken, wins);
        dx = tf.add(dx, scatterTap(tf.mul(dy, tf.cast(wins, 'float32')) as tf.Tensor4D, sh, sw, i - top, j - left, h, w));
      }
    }
    return dx;
  });
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: ({ inputs, attrs }) => {
    const { dy, input, output } = inputs as unknown as tf.MaxPoolGradInputs;
    const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs;
    return tf.tidy(() =>
      maxPoolGradImpl(
        asTensor<tf.Rank.R4>(dy, 'dy'),
        asTensor<tf.Rank.R4>(input, 'input'),
        asTensor<tf.Rank.R4>(output, 'output'),
        filterSize,
        strides,
        pad,
        dimRoundingMode,
      ),
    );
  },
};
