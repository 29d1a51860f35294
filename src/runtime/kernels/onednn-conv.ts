/**
 * Convolutions on the wasm backend through oneDNN, when the optional native addon is built
 * (native/dnnl-conv, the npm package `likeness-dnnl-conv`; it links Debian's libdnnl).
 *
 * The wasm backend's tensors live in its heap; the addon runs oneDNN's convolution, its input
 * gradient and its filter gradient directly on views of that heap (NHWC activations, [kh, kw, in,
 * out] filters: tfjs's layouts, so nothing is copied). On x86-64 oneDNN uses the machine's full vector
 * width where wasm has 128-bit SIMD: a ResNet-18 training step 4x faster on the same 2 cores
 * (bench/train-step --onednn, docs/BENCHMARKS.md). Cases the addon does not take (dilation, another
 * layout or dtype, a fused bias or activation, a rounding mode that oneDNN's output size disagrees
 * with) go to the kernel it replaced; empty tensors get their zeros here.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

/** The addon's interface (native/dnnl-conv/conv.cc). */
export interface DnnlConvAddon {
  /** op 0: y = conv(x, w); 1: x = ∂/∂x given dy = y; 2: w = ∂/∂w given x and dy = y. */
  run(op: 0 | 1 | 2, x: Float32Array, w: Float32Array, y: Float32Array, geometry: number[]): void;
  /** Training batch norm over all axes but c (dims [n, h, w, c]): writes y, mean, variance (./onednn-batch-norm.ts). */
  batchNorm(x: Float32Array, y: Float32Array, scale: Float32Array, shift: Float32Array, mean: Float32Array, variance: Float32Array, dims: number[], epsilon: number): void;
  /** Its gradient: writes dx, dscale, dshift. */
  batchNormBackward(x: Float32Array, dy: Float32Array, scale: Float32Array, mean: Float32Array, variance: Float32Array, dx: Float32Array, dscale: Float32Array, dshift: Float32Array, dims: number[], epsilon: number): void;
  /** OpenMP threads for this thread's later calls. */
  setThreads(n: number): void;
  /**
   * This thread's later convolutions: 'bf16' reads their inputs as bfloat16 (output and accumulation
   * float32); throws where the CPU lacks AVX512-BF16 and AMX.
   */
  setConvPrecision(name: 'f32' | 'bf16'): void;
  version(): string;
}

const FORWARD = 0;
const BACKWARD_INPUT = 1;
const BACKWARD_FILTER = 2;

/** The addon, or the reason it is not available (not built, no libdnnl on this machine). */
export function loadDnnlConv(): DnnlConvAddon | string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('likeness-dnnl-conv') as DnnlConvAddon;
  } catch (err) {
    return `likeness-dnnl-conv: ${(err as Error).message.split('\n')[0]}`;
  }
}

/**
 * The addon's geometry for a conv, or undefined where it must not take it: dilation, or an output
 * size other than oneDNN's (floor((in + pads − k) / s) + 1; tfjs's 'ceil' rounding can differ).
 */
export function dnnlGeometry(info: tf.backend_util.Conv2DInfo): number[] | undefined {
  const { top, left, bottom, right } = info.padInfo;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  const fits = (size: number, before: number, after: number, k: number, s: number, out: number) =>
    before >= 0 && after >= 0 && Math.floor((size + before + after - k) / s) + 1 === out;
  if (!fits(info.inHeight, top, bottom, info.filterHeight, info.strideHeight, info.outHeight)) return undefined;
  if (!fits(info.inWidth, left, right, info.filterWidth, info.strideWidth, info.outWidth)) return undefined;
  return [
    info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.outHeight, info.outWidth, info.outChannels,
    info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth,
    top, left, bottom, right,
  ];
}

const isNhwc = (dataFormat: string | undefined) => dataFormat === undefined || dataFormat === 'NHWC' || dataFormat === 'channelsLast';
const allFloat32 = (...infos: (tf.TensorInfo | undefined)[]) => infos.every((t) => t?.dtype === 'float32');

type KernelArgs = Parameters<tf.KernelFunc>[0];

/**
 * One oneDNN-backed kernel: `plan` returns the op, the geometry and the output shape when the addon
 * takes the call, else undefined and `fallback` runs. Of the op's (x, w, y) operands the one left
 * undefined is the output, made here; the other two are inputs.
 */
function dnnlKernel(
  addon: DnnlConvAddon,
  fallback: tf.KernelConfig,
  plan: (args: KernelArgs) => { op: 0 | 1 | 2; geometry: number[]; operands: [tf.TensorInfo | undefined, tf.TensorInfo | undefined, tf.TensorInfo | undefined]; outShape: number[] } | undefined,
): tf.KernelConfig {
  return {
    kernelName: fallback.kernelName,
    backendName: 'wasm',
    // The replaced kernel's set-up (e.g. the stock forward conv's wasm bindings) still has to run.
    setupFunc: fallback.setupFunc,
    disposeFunc: fallback.disposeFunc,
    kernelFunc: (args) => {
      const p = plan(args);
      if (!p) return fallback.kernelFunc(args);
      const wasm = args.backend as BackendWasm;
      const out = wasm.makeOutput(p.outShape, 'float32');
      // An empty tensor (batch, size or channels 0): every output is an empty sum. oneDNN has no
      // zero-size convolution, and the stock wasm ones misbehave there (XNNPACK errors, heap damage).
      if (p.geometry.slice(0, 7).includes(0)) {
        (wasm.typedArrayFromHeap(out) as Float32Array).fill(0);
        return out;
      }
      const views = p.operands.map((t) => wasm.typedArrayFromHeap(t ?? out) as Float32Array) as [Float32Array, Float32Array, Float32Array];
      addon.run(p.op, views[0], views[1], views[2], p.geometry);
      return out;
    },
  };
}

/**
 * oneDNN versions of Conv2D, FusedConv2D (without bias or activation: the encoders' convolutions),
 * Conv2DBackpropInput and Conv2DBackpropFilter; each falls back to the kernel it replaces, looked
 * up in `current` (the kernels registered for wasm now).
 */
export function onednnConvConfigs(addon: DnnlConvAddon, current: (name: string) => tf.KernelConfig | undefined): tf.KernelConfig[] {
  const need = (name: string) => {
    const k = current(name);
    if (!k) throw new Error(`no wasm kernel '${name}' to fall back on`);
    return k;
  };
  const forward = (x: tf.TensorInfo, filter: tf.TensorInfo, attrs: tf.Conv2DAttrs) => {
    if (!isNhwc(attrs.dataFormat) || !allFloat32(x, filter)) return undefined;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
      attrs.strides, attrs.dilations, attrs.pad, attrs.dimRoundingMode,
    );
    const geometry = dnnlGeometry(info);
    return geometry && { op: FORWARD as 0, geometry, operands: [x, filter, undefined] as [tf.TensorInfo, tf.TensorInfo, undefined], outShape: info.outShape };
  };
  return [
    dnnlKernel(addon, need(tf.Conv2D), ({ inputs, attrs }) => {
      const { x, filter } = inputs as unknown as Record<string, tf.TensorInfo>;
      return forward(x, filter, attrs as unknown as tf.Conv2DAttrs);
    }),
    dnnlKernel(addon, need(tf.FusedConv2D), ({ inputs, attrs }) => {
      const { x, filter, bias, preluActivationWeights } = inputs as unknown as Record<string, tf.TensorInfo | undefined>;
      const a = attrs as unknown as tf.FusedConv2DAttrs;
      if (bias || preluActivationWeights || (a.activation !== undefined && a.activation !== 'linear')) return undefined;
      return forward(x as tf.TensorInfo, filter as tf.TensorInfo, a);
    }),
    dnnlKernel(addon, need(tf.Conv2DBackpropInput), ({ inputs, attrs }) => {
      const { dy, filter } = inputs as unknown as Record<string, tf.TensorInfo>;
      const a = attrs as unknown as tf.Conv2DBackpropInputAttrs;
      if (!isNhwc(a.dataFormat) || !allFloat32(dy, filter)) return undefined;
      const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode);
      const geometry = dnnlGeometry(info);
      // The stock kernels accept a dy of another size than the forward conv's output; oneDNN does not.
      if (!geometry || !tf.util.arraysEqual(dy.shape, info.outShape)) return undefined;
      return { op: BACKWARD_INPUT, geometry, operands: [undefined, filter, dy], outShape: info.inShape };
    }),
    dnnlKernel(addon, need(tf.Conv2DBackpropFilter), ({ inputs, attrs }) => {
      const { x, dy } = inputs as unknown as Record<string, tf.TensorInfo>;
      const a = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
      if (!isNhwc(a.dataFormat) || !allFloat32(x, dy)) return undefined;
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
      const geometry = dnnlGeometry(info);
      if (!geometry || !tf.util.arraysEqual(dy.shape, info.outShape)) return undefined;
      return { op: BACKWARD_FILTER, geometry, operands: [x, undefined, dy], outShape: a.filterShape };
    }),
  ];
}
