/**
 * Small helpers shared by the composite wasm kernels: they turn the TensorInfos a kernelFunc
 * receives into Tensors (so public tf ops can run on them) and crop/pad along spatial axes.
 */
import * as tf from '@tensorflow/tfjs';

/** [before, after] amounts along one spatial axis; negative values mean "crop". */
export type AxisPad = [number, number];

/**
 * A Tensor view of a kernel input. Ops pass Tensors already; a bare TensorInfo gets a wrapper that
 * shares its dataId (the caller's tf.tidy disposes the wrapper, not the data).
 */
export function asTensor<R extends tf.Rank>(info: tf.TensorInfo | undefined, name = 'input'): tf.Tensor<R> {
  if (info === undefined) throw new Error(`kernel input '${name}' is missing`);
  if (info instanceof tf.Tensor) return info as tf.Tensor<R>;
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor<R>;
}

/**
 * Applies the negative parts of spatial pads as crops on an NHWC tensor and returns the remaining
 * non-negative pads, ready for a conv2d explicit-padding argument. Crops only ever remove rows that
 * cannot contribute (out-of-range taps), so the result is unchanged.
 */
export function cropNegativePads(x: tf.Tensor4D, padH: AxisPad, padW: AxisPad): { x: tf.Tensor4D; pads: [AxisPad, AxisPad] } {
  const [n, h, w, c] = x.shape;
  const cropTop = Math.max(0, -padH[0]);
  const cropBottom = Math.max(0, -padH[1]);
  const cropLeft = Math.max(0, -padW[0]);
  const cropRight = Math.max(0, -padW[1]);
  const pads: [AxisPad, AxisPad] = [
    [Math.max(0, padH[0]), Math.max(0, padH[1])],
    [Math.max(0, padW[0]), Math.max(0, padW[1])],
  ];
  if (cropTop + cropBottom + cropLeft + cropRight === 0) return { x, pads };
  // [N, H - crops, W - crops, C]
  const cropped = tf.slice(x, [0, cropTop, cropLeft, 0], [n, h - cropTop - cropBottom, w - cropLeft - cropRight, c]);
  return { x: cropped, pads };
}

/** conv2d explicit padding in NHWC layout. */
export function explicitPad(padH: AxisPad, padW: AxisPad): [[number, number], [number, number], [number, number], [number, number]] {
  return [[0, 0], padH, padW, [0, 0]];
}

/** Rejects layouts the composite kernels do not implement (the wasm forward convs are NHWC-only too). */
export function assertNhwc(dataFormat: string | undefined, kernel: string): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC' && dataFormat !== 'channelsLast') {
    throw new Error(`${kernel} on wasm supports NHWC only, got dataFormat=${dataFormat}`);
  }
}

/** Rejects dilations > 1, which tfjs conv gradients do not support either. */
export function assertNoDilation(dilations: number | [number, number] | undefined, kernel: string): void {
  const [dh, dw] = typeof dilations === 'number' || dilations === undefined ? [dilations ?? 1, dilations ?? 1] : dilations;
  if (dh !== 1 || dw !== 1) throw new Error(`${kernel} on wasm supports dilation 1 only, got ${dh}x${dw}`);
}

/**
 * x[n, i + o·sH, j + p·sW, c] for o < outH, p < outW: the pixels one filter tap sees. Uses a 4D
 * reshape + slice (wasm's StridedSlice is a slow scalar loop). Rows/columns past the end read zeros.
 */
export function tapView(x: tf.Tensor4D, i: number, j: number, outH: number, outW: number, sh: number, sw: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const needH = outH * sh;
    const needW = outW * sw;
    // [N, outH·sH, outW·sW, C], starting at (i, j), zero-extended where x is too short
    const { x: cropped, pads } = cropNegativePads(x, [-i, needH - (h - i)], [-j, needW - (w - j)]);
    const window = pads[0][1] + pads[1][1] > 0 ? tf.pad(cropped, explicitPad(pads[0], pads[1])) : cropped;
    if (sh === 1 && sw === 1) return window;
    // [N·outH, sH, outW, sW·C] → keep phase (0, 0): [N·outH, 1, outW, C]
    const grid = tf.reshape(window, [n * outH, sh, outW, sw * c]);
    return tf.reshape(tf.slice(grid, [0, 0, 0, 0], [n * outH, 1, outW, c]), [n, outH, outW, c]) as tf.Tensor4D;
  });
}
