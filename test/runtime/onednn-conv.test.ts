/**
 * oneDNN's convolutions on the wasm backend (src/runtime/kernels/onednn-conv.ts, native/dnnl-conv)
 * against the cpu backend: forward, input and filter gradients over a grid of geometries, the cases
 * that must fall back to the wasm kernels, the addon's argument checks, and the shipped model's
 * embeddings of real images.
 *
 * The addon is optional; CI installs libdnnl-dev (.ci/run), so there it must load. Elsewhere, without
 * it, these tests are skipped with a note.
 */
import * as tf from '@tensorflow/tfjs';
import { SHIPPED_MODEL } from '../../src/config/config';
import { LocalEngine } from '../../src/embed/engine';
import { DEFAULT_DECODE_LIMITS, decodeToPixels } from '../../src/images/decode';
import { readManifest } from '../../src/model/model-dir';
import { DnnlConvAddon, loadDnnlConv } from '../../src/runtime/kernels/onednn-conv';
import { registerOnednnConvKernels, registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../../src/runtime/wasm-kernels';
import { fmnistFixtures } from '../helpers';
import { relError, values } from '../numeric';

const loaded = loadDnnlConv();
if (typeof loaded === 'string' && process.env.CI) throw new Error(`CI installs libdnnl-dev, so the oneDNN addon must load: ${loaded}`);
const describeIfBuilt = typeof loaded === 'string' ? describe.skip : describe;
if (typeof loaded === 'string') process.stderr.write(`onednn-conv tests skipped: ${loaded}\n`);

/** The addon, counting its calls per op, so a test can tell oneDNN ran (or that a case fell back). */
const calls = [0, 0, 0];
const counting: DnnlConvAddon | undefined =
  typeof loaded === 'string'
    ? undefined
    : {
        run: (op, x, w, y, geometry) => {
          calls[op]++;
          loaded.run(op, x, w, y, geometry);
        },
        setThreads: (n) => loaded.setThreads(n),
        setConvPrecision: (name) => loaded.setConvPrecision(name),
        version: () => loaded.version(),
        batchNorm: (...args) => loaded.batchNorm(...args),
        batchNormBackward: (...args) => loaded.batchNormBackward(...args),
      };

const REL_TOL = 1e-4;

type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  name: string;
  x: [number, number, number, number];
  filter: [number, number, number, number];
  strides: [number, number];
  pad: Pad;
}

// The encoders' layers (3x3 same, stride 1 and 2 on even and odd sizes, the 1x1 strided shortcut, the
// one-channel stem) and shapes they do not use but the kernel must get right.
const CASES: Case[] = [
  { name: '3x3 same stride 1', x: [4, 9, 9, 8], filter: [3, 3, 8, 16], strides: [1, 1], pad: 'same' },
  { name: '3x3 same stride 2, even size (pad only after)', x: [3, 8, 8, 5], filter: [3, 3, 5, 7], strides: [2, 2], pad: 'same' },
  { name: '3x3 same stride 2, odd size', x: [3, 7, 7, 4], filter: [3, 3, 4, 6], strides: [2, 2], pad: 'same' },
  { name: '1x1 valid stride 2 (shortcut)', x: [2, 8, 8, 16], filter: [1, 1, 16, 32], strides: [2, 2], pad: 'valid' },
  { name: 'one input channel (stem)', x: [5, 12, 12, 1], filter: [3, 3, 1, 8], strides: [1, 1], pad: 'same' },
  { name: '5x3 valid, strides 2 and 1, rows left over', x: [2, 12, 9, 3], filter: [5, 3, 3, 4], strides: [2, 1], pad: 'valid' },
  { name: 'explicit asymmetric pads', x: [2, 6, 7, 3], filter: [3, 2, 3, 5], strides: [1, 2], pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { name: 'input smaller than the filter in one axis (2 rows, a 3-row filter)', x: [1, 2, 6, 3], filter: [3, 3, 3, 2], strides: [1, 1], pad: 'same' },
];

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** conv2d, and its gradients w.r.t. x and the filter of sum(conv · r) for a fixed r. */
function convAndGrads(c: Case): Float32Array[] {
  return tf.tidy(() => {
    const x = tf.tensor4d(values(size(c.x), 1), c.x);
    const w = tf.tensor4d(values(size(c.filter), 2), c.filter);
    const y = tf.conv2d(x, w, c.strides, c.pad);
    const r = tf.tensor(values(y.size, 3), y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), r)))([x, w]);
    return [y, dx, dw].map((t) => t.dataSync() as Float32Array);
  });
}

/** `f` with the wasm training kernels alone (awaited), oneDNN's put back after; oneDNN must not run. */
async function withoutOnednn<T>(f: () => T | Promise<T>): Promise<T> {
  unregisterWasmTrainingKernels();
  registerWasmTrainingKernels();
  const before = [...calls];
  try {
    return await f();
  } finally {
    registerOnednnConvKernels(counting as DnnlConvAddon);
    expect(calls).toEqual(before);
  }
}

async function onBackend<T>(name: 'cpu' | 'wasm', f: () => T): Promise<T> {
  await tf.setBackend(name);
  return f();
}

describeIfBuilt('oneDNN convolutions on wasm', () => {
  beforeAll(async () => {
    registerWasmTrainingKernels();
    registerOnednnConvKernels(counting as DnnlConvAddon);
    expect(await tf.setBackend('wasm')).toBe(true);
  });

  afterAll(async () => {
    // Leave the wasm kernels as the other tests expect them: training kernels, no oneDNN.
    unregisterWasmTrainingKernels();
    registerWasmTrainingKernels();
    await tf.setBackend('cpu');
  });

  it.each(CASES)('$name: forward, input and filter gradients match cpu, computed by oneDNN', async (c) => {
    const ref = await onBackend('cpu', () => convAndGrads(c));
    const before = [...calls];
    const got = await onBackend('wasm', () => convAndGrads(c));
    // Two forward passes (one under tf.grads), one of each gradient.
    expect(calls.map((n, i) => n - before[i])).toEqual([2, 1, 1]);
    ref.forEach((r, i) => {
      expect(got[i].length).toBe(r.length);
      expect(relError(r, got[i])).toBeLessThan(REL_TOL);
    });
  });

  it('leaves to the wasm kernels what oneDNN does not take: dilation, a fused bias and activation', async () => {
    const x = [2, 8, 8, 3] as [number, number, number, number];
    const w = [3, 3, 3, 4] as [number, number, number, number];
    const cases: Array<() => tf.Tensor> = [
      () => tf.conv2d(tf.tensor4d(values(size(x), 1), x), tf.tensor4d(values(size(w), 2), w), 1, 'same', 'NHWC', 2),
      () =>
        tf.fused.conv2d({
          x: tf.tensor4d(values(size(x), 1), x),
          filter: tf.tensor4d(values(size(w), 2), w),
          strides: 1,
          pad: 'same',
          bias: tf.tensor1d(values(4, 3)),
          activation: 'relu',
        }),
    ];
    for (const f of cases) {
      const run = () => tf.tidy(() => f().dataSync() as Float32Array);
      const ref = await onBackend('cpu', run);
      const before = [...calls];
      const got = await onBackend('wasm', run);
      expect(calls).toEqual(before);
      expect(relError(ref, got)).toBeLessThan(REL_TOL);
    }
  });

  it("leaves 'ceil' rounding (5x5 where oneDNN's formula gives 4x4) to the wasm kernels", async () => {
    await tf.setBackend('wasm');
    const before = [...calls];
    // (the stock wasm conv fills only 4x4 of its 5x5 output here, so only the shape is checked)
    const shape = tf.tidy(() => tf.conv2d(tf.ones([2, 8, 8, 3]) as tf.Tensor4D, tf.ones([3, 3, 3, 4]) as tf.Tensor4D, 2, 1, 'NHWC', 1, 'ceil').shape);
    expect(shape).toEqual([2, 5, 5, 4]);
    expect(calls).toEqual(before);
  });

  it('gives empty tensors their empty sums (zeros) without calling oneDNN, as cpu does', async () => {
    type Shape4 = [number, number, number, number];
    const cases: Array<{ x: Shape4; w: Shape4; pad: 'same' | 'valid' }> = [
      { x: [0, 4, 4, 2], w: [3, 3, 2, 3], pad: 'same' }, // no images
      { x: [1, 2, 2, 2], w: [3, 3, 2, 3], pad: 'valid' }, // a filter larger than the image: 0x0 out
      { x: [1, 4, 4, 2], w: [3, 3, 2, 0], pad: 'same' }, // no output channels
      { x: [2, 4, 4, 0], w: [3, 3, 0, 3], pad: 'same' }, // no input channels: zeros
    ];
    for (const c of cases) {
      const run = () => tf.tidy(() => convAndGrads({ name: '', x: c.x, filter: c.w, strides: [1, 1], pad: c.pad }));
      const ref = await onBackend('cpu', run);
      const before = [...calls];
      const got = await onBackend('wasm', run);
      expect(calls).toEqual(before);
      expect(got).toEqual(ref);
    }
  });

  it('runs a fused conv without bias or activation (the encoders\' layers) itself', async () => {
    const f = () => tf.tidy(() => tf.fused.conv2d({ x: tf.tensor4d(values(2 * 6 * 6 * 3, 1), [2, 6, 6, 3]), filter: tf.tensor4d(values(3 * 3 * 3 * 5, 2), [3, 3, 3, 5]), strides: 1, pad: 'same' }).dataSync() as Float32Array);
    const ref = await onBackend('cpu', f);
    const before = calls[0];
    const got = await onBackend('wasm', f);
    expect(calls[0]).toBe(before + 1);
    expect(relError(ref, got)).toBeLessThan(REL_TOL);
  });

  it('with bf16 inputs (--conv-kernels onednn-bf16) stays within bf16 rounding of cpu, or is refused on a CPU without AVX512-BF16', async () => {
    const addon = loaded as DnnlConvAddon;
    expect(() => addon.setConvPrecision('fp16' as 'bf16')).toThrow(/'f32' or 'bf16'/);
    let supported = true;
    try {
      addon.setConvPrecision('bf16');
    } catch (err) {
      supported = false;
      expect((err as Error).message).toMatch(/AVX512-BF16 or AMX/);
    }
    if (!supported) return;
    try {
      for (const c of CASES) {
        const ref = await onBackend('cpu', () => convAndGrads(c));
        const before = [...calls];
        const got = await onBackend('wasm', () => convAndGrads(c));
        expect(calls.map((n, i) => n - before[i])).toEqual([2, 1, 1]);
        addon.setConvPrecision('f32');
        const f32 = await onBackend('wasm', () => convAndGrads(c));
        addon.setConvPrecision('bf16');
        ref.forEach((r, i) => {
          // bf16 keeps 8 bits of mantissa: products of rounded inputs, summed in float32
          expect(relError(r, got[i])).toBeLessThan(1e-2);
          expect(relError(r, f32[i])).toBeLessThan(REL_TOL);
        });
        // and each op rounded its inputs: no output is float32's
        f32.forEach((r, i) => expect(relError(r, got[i])).toBeGreaterThan(1e-5));
      }
    } finally {
      addon.setConvPrecision('f32');
    }
  });

  it('refuses arrays that do not match the geometry instead of reading past them', () => {
    const addon = loaded as DnnlConvAddon;
    const geometry = [1, 4, 4, 2, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1];
    const x = new Float32Array(32);
    const w = new Float32Array(54);
    const y = new Float32Array(48);
    expect(() => addon.run(0, x, w, y, geometry)).not.toThrow();
    expect(() => addon.run(0, new Float32Array(31), w, y, geometry)).toThrow(/x has 31 elements, the geometry needs 32/);
    expect(() => addon.run(2, x, w, new Float32Array(4800), geometry)).toThrow(/y has 4800 elements/);
    expect(() => addon.run(0, x, new Float64Array(54) as unknown as Float32Array, y, geometry)).toThrow(/w must be a Float32Array/);
    expect(() => addon.run(3 as 0, x, w, y, geometry)).toThrow(/op must be 0, 1 or 2/);
    expect(() => addon.run(0, x, w, y, geometry.slice(1))).toThrow(/15 integers/);
    expect(() => addon.run(0, x, w, y, [0, ...geometry.slice(1)])).toThrow(/positive/);
    expect(() => addon.run(0, x, w, y, [2 ** 31, ...geometry.slice(1)])).toThrow(/32-bit/);
    expect(() => addon.run(0, x, w, y, [...geometry.slice(0, 11), -1, 1, 1, 1])).toThrow(/pads must be non-negative/);
    // products that overflow int64 (each factor fits in 32 bits) are refused before any array is read
    expect(() => addon.run(0, x, w, y, [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 4, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1])).toThrow(/too large/);
    // 4x4 input, 3x3 filter, stride 1, no padding gives 2x2, not the 4x4 the geometry claims
    expect(() => addon.run(0, x, w, y, [1, 4, 4, 2, 4, 4, 3, 3, 3, 1, 1, 0, 0, 0, 0])).toThrow(/oneDNN/);
  });

  it('embeds real images with the shipped model as the wasm kernels do', async () => {
    const manifest = readManifest(SHIPPED_MODEL);
    const fixtures = fmnistFixtures().slice(0, 24);
    const pixels = Buffer.concat(await Promise.all(fixtures.map((f) => decodeToPixels(f.bytes, manifest.input, DEFAULT_DECODE_LIMITS))));
    const engine = await LocalEngine.open(SHIPPED_MODEL);
    try {
      const before = calls[0];
      const withOnednn = await engine.run(pixels, fixtures.length);
      expect(calls[0]).toBeGreaterThan(before);
      const withWasm = await withoutOnednn(() => engine.run(pixels, fixtures.length));
      expect(calls[0]).toBeGreaterThan(before);
      const dim = manifest.embedding.dim;
      for (let i = 0; i < fixtures.length; i++) {
        let dot = 0;
        for (let j = 0; j < dim; j++) dot += withOnednn[i * dim + j] * withWasm[i * dim + j];
        expect(dot).toBeGreaterThan(0.99999); // unit vectors: the same direction
      }
    } finally {
      await engine.close();
    }
  });
});
