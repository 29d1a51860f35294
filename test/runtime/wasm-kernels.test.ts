/**
 * The wasm training kernels against the cpu backend (the reference): raw kernels over the geometry
 * grid, op gradients the encoders use, whole-encoder gradients, and a 20-step training run.
 */
import * as tf from '@tensorflow/tfjs';
import { buildResNet, RESNET_PRESETS } from '../../src/model/resnet';
import { relError, values } from '../numeric';
import {
  simdFilterGrad,
  simdFilterGradHelpers,
  simdFilterGradStatus,
  simdFilterGradSupports,
  startSimdFilterGradHelpers,
} from '../../src/runtime/kernels/simd-filter-grad';
import { registerWasmTrainingKernels, unregisterWasmTrainingKernels, wasmTrainingKernelsRegistered } from '../../src/runtime/wasm-kernels';
import { withSeededRandom } from '../../src/train/seeded-init';

type Backend = 'cpu' | 'wasm';
type Pad = 'same' | 'valid';

/** Relative error allowed between backends (float32, different summation order). */
const REL_TOL = 1e-4;
/** Seed of the initial weights of the models built on both backends. */
const WEIGHT_SEED = 7;

interface Spec {
  shape: number[];
  seed: number;
}

/** Runs `f` on `backend` with fresh input tensors; returns its outputs as arrays. */
async function on(backend: Backend, inputs: Spec[], f: (...xs: tf.Tensor[]) => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = inputs.map((s) => tf.tensor(values(s.shape.reduce((a, b) => a * b, 1), s.seed), s.shape));
    return f(...xs).map((t) => t.dataSync() as Float32Array);
  });
}

/** Asserts `f` gives the same outputs on wasm as on cpu. */
async function expectSameOnWasm(inputs: Spec[], f: (...xs: tf.Tensor[]) => tf.Tensor[]): Promise<void> {
  const ref = await on('cpu', inputs, f);
  const got = await on('wasm', inputs, f);
  expect(got.length).toBe(ref.length);
  ref.forEach((r, i) => expect(relError(r, got[i])).toBeLessThan(REL_TOL));
}

function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): tf.Tensor {
  return tf.engine().runKernel(name, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

beforeAll(async () => {
  registerWasmTrainingKernels();
  expect(await tf.setBackend('wasm')).toBe(true);
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('registration', () => {
  it('is idempotent and registers every training kernel for wasm', () => {
    registerWasmTrainingKernels();
    registerWasmTrainingKernels();
    expect(wasmTrainingKernelsRegistered()).toBe(true);
    for (const name of ['Conv2DBackpropInput', 'Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter']) {
      expect(tf.getKernel(name, 'wasm')).toBeDefined();
    }
  });

  it('restores the stock kernel set and registers again', async () => {
    unregisterWasmTrainingKernels();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(tf.getKernel('Conv2DBackpropInput', 'wasm')).toBeDefined(); // the stock one
    registerWasmTrainingKernels();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeDefined();
  });
});

describe('conv2d backprop kernels match cpu', () => {
  const grid: [number, number, Pad][] = [];
  for (const k of [1, 3, 5, 7]) for (const s of [1, 2]) for (const pad of ['same', 'valid'] as Pad[]) grid.push([k, s, pad]);

  it.each(grid)('k=%i stride=%i pad=%s (odd, even and non-square sizes)', async (k, s, pad) => {
    for (const [n, h, w] of [
      [2, 9, 9],
      [1, 8, 11],
      [3, 7, 10],
    ]) {
      const [c, o] = [3, 4];
      const info = tf.backend_util.computeConv2DInfo([n, h, w, c], [k, k, c, o], s, 1, pad);
      if (info.outHeight < 1 || info.outWidth < 1) continue;
      const dyShape = [n, info.outHeight, info.outWidth, o];
      const attrs = { strides: s, pad, dataFormat: 'NHWC' };
      await expectSameOnWasm([{ shape: dyShape, seed: 1 }, { shape: [k, k, c, o], seed: 2 }], (dy, f) => [
        runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...attrs, inputShape: [n, h, w, c] }),
      ]);
      // 4 filters: the XNNPACK formulation; 8 and 16: the SIMD kernel, with input channels that are a
      // multiple of 4, not one (its 1-channel tiles), and both.
      for (const [fc, fo] of [[c, o], [5, 8], [8, 16], [1, 8]]) {
        const fdyShape = [n, info.outHeight, info.outWidth, fo];
        await expectSameOnWasm([{ shape: [n, h, w, fc], seed: 3 }, { shape: fdyShape, seed: 4 }], (x, dy) => [
          runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: [k, k, fc, fo] }),
        ]);
      }
    }
  });

  it.each([2, 3])('SIMD filter gradient split over %i threads (helper workers) matches cpu', async (threads) => {
    expect(await startSimdFilterGradHelpers(threads)).toBe(true);
    expect(simdFilterGradStatus()).toEqual({ threads, helpersReady: threads - 1 });
    // 7 images: uneven ranges; then a batch of 2 on 3 threads leaves a helper with no images
    for (const n of [7, 2]) {
      const g = { n, h: 9, w: 9, c: 6, oh: 5, ow: 5, o: 16, kh: 3, kw: 3, sh: 2, sw: 2, top: 1, left: 1 };
      const x = values(n * 9 * 9 * 6, 9);
      const dy = values(n * 5 * 5 * 16, 10);
      const [ref] = await on('cpu', [{ shape: [n, 9, 9, 6], seed: 9 }, { shape: [n, 5, 5, 16], seed: 10 }], (a, b) => [
        runKernel('Conv2DBackpropFilter', { x: a, dy: b }, { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 6, 16] }),
      ]);
      expect(relError(ref, simdFilterGrad(x, dy, g, threads))).toBeLessThan(REL_TOL);
      // a one-thread call uses the same pool without disturbing it
      expect(relError(ref, simdFilterGrad(x, dy, g, 1))).toBeLessThan(REL_TOL);
      expect(simdFilterGradStatus()).toEqual({ threads, helpersReady: threads - 1 });
    }
  });

  it('SIMD filter gradient: a helper that stops takes its pool with it; the next calls stay correct', async () => {
    expect(await startSimdFilterGradHelpers(2)).toBe(true);
    const n = 6;
    const g = { n, h: 8, w: 8, c: 4, oh: 8, ow: 8, o: 8, kh: 3, kw: 3, sh: 1, sw: 1, top: 1, left: 1 };
    const x = values(n * 8 * 8 * 4, 11);
    const dy = values(n * 8 * 8 * 8, 12);
    const ref = simdFilterGrad(x, dy, g, 1);
    const [helper] = simdFilterGradHelpers();
    await helper.terminate();
    await new Promise((resolve) => setImmediate(resolve)); // the 'exit' event
    expect(simdFilterGradStatus().helperError).toMatch(/exited/);
    // a new pool starts; this call runs on the main thread while its helper boots, later ones use it
    expect(relError(ref, simdFilterGrad(x, dy, g, 2))).toBeLessThan(1e-6);
    expect(await startSimdFilterGradHelpers(2)).toBe(true);
    expect(relError(ref, simdFilterGrad(x, dy, g, 2))).toBeLessThan(REL_TOL);
  });

  it('SIMD filter gradient: batch 512 (several L2 blocks), and its argument checks', async () => {
    // 216 floats per image: 303 images per 256 KB block, so two blocks
    await expectSameOnWasm([{ shape: [512, 6, 6, 4], seed: 7 }, { shape: [512, 3, 3, 8], seed: 8 }], (x, dy) => [
      runKernel('Conv2DBackpropFilter', { x, dy }, { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 4, 8] }),
    ]);
    const g = { n: 1, h: 2, w: 2, c: 1, oh: 2, ow: 2, o: 4, kh: 1, kw: 1, sh: 1, sw: 1, top: 0, left: 0 };
    expect(simdFilterGradSupports({ ...g, o: 8 })).toBe(true);
    expect(simdFilterGradSupports({ ...g, o: 8, n: 1 << 20, h: 32, w: 32, c: 16 })).toBe(false); // 2 GiB of inputs
    // 1.6 GB of inputs and a 15.7 MB filter buffer fit; one filter buffer for each of 64 threads does not
    const big = { ...g, n: 768, h: 64, w: 64, c: 64, oh: 64, ow: 64, o: 64, kh: 31, kw: 31 };
    expect(simdFilterGradSupports(big, 1)).toBe(true);
    expect(simdFilterGradSupports(big, 64)).toBe(false);
    expect(() => simdFilterGrad(new Float32Array(4), new Float32Array(16), g)).toThrow(/multiple of 8/);
    expect(() => simdFilterGrad(new Float32Array(3), new Float32Array(32), { ...g, o: 8 })).toThrow(/lengths/);
  });

  it.each([1, 512])('batch %i', async (n) => {
    await expectSameOnWasm([{ shape: [n, 6, 6, 2], seed: 5 }, { shape: [3, 3, 2, 3], seed: 6 }], (x, f) =>
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'))))([x, f]),
    );
  });

  it('representative layer: 28x28x32 input, 3x3 filter, stride 1 same', async () => {
    // Batch 1 and 8 output channels for dW: the cpu reference Conv2DBackpropFilter is very slow.
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC' };
    await expectSameOnWasm([{ shape: [1, 28, 28, 32], seed: 7 }, { shape: [3, 3, 32, 32], seed: 8 }], (dy, f) => [
      runKernel('Conv2DBackpropInput', { dy, filter: f }, { ...attrs, inputShape: [1, 28, 28, 32] }),
    ]);
    await expectSameOnWasm([{ shape: [1, 28, 28, 32], seed: 7 }, { shape: [1, 28, 28, 8], seed: 8 }], (x, dy) => [
      runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: [3, 3, 32, 8] }),
    ]);
  });

  it.each([
    ['linear', 1],
    ['relu', 2],
  ] as const)('fused conv2d (bias, %s, stride %i) gradients', async (activation, s) => {
    await expectSameOnWasm(
      [
        { shape: [2, 10, 10, 3], seed: 9 },
        { shape: [3, 3, 3, 5], seed: 10 },
        { shape: [5], seed: 11 },
      ],
      (x, f, b) =>
        tf.grads((a: tf.Tensor, w: tf.Tensor, bias: tf.Tensor) =>
          tf.sum(tf.square(tf.fused.conv2d({ x: a as tf.Tensor4D, filter: w as tf.Tensor4D, bias, strides: s, pad: 'same', activation }))),
        )([x, f, b]),
    );
  });
});

describe('depthwise backprop kernels match cpu', () => {
  const grid: [number, number, Pad, number][] = [];
  for (const k of [1, 3, 5, 7]) for (const s of [1, 2]) for (const pad of ['same', 'valid'] as Pad[]) grid.push([k, s, pad, k === 3 ? 2 : 1]);

  it.each(grid)('k=%i stride=%i pad=%s multiplier=%i', async (k, s, pad, mult) => {
    for (const [n, h, w] of [
      [2, 9, 9],
      [1, 8, 11],
    ]) {
      const c = 3;
      const info = tf.backend_util.computeConv2DInfo([n, h, w, c], [k, k, c, mult], s, 1, pad, undefined, true);
      if (info.outHeight < 1 || info.outWidth < 1) continue;
      const dyShape = [n, info.outHeight, info.outWidth, c * mult];
      const attrs = { strides: s, pad, dilations: 1 };
      await expectSameOnWasm([{ shape: dyShape, seed: 12 }, { shape: [k, k, c, mult], seed: 13 }], (dy, f) => [
        runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter: f }, { ...attrs, inputShape: [n, h, w, c] }),
      ]);
      await expectSameOnWasm([{ shape: [n, h, w, c], seed: 14 }, { shape: dyShape, seed: 15 }], (x, dy) => [
        runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...attrs, filterShape: [k, k, c, mult] }),
      ]);
    }
  });
});

describe('other encoder gradients match cpu', () => {
  const x = { shape: [3, 8, 8, 4], seed: 16 };
  const loss = (y: tf.Tensor): tf.Scalar => tf.sum(tf.mul(y, tf.sin(tf.range(0, y.size).reshape(y.shape))));

  it('max-pool 3x3 stride 2 same, 2x2 valid (stock wasm MaxPoolGrad is wrong for N, C > 1)', async () => {
    await expectSameOnWasm([x], (a) => [
      tf.grad((t: tf.Tensor) => loss(tf.maxPool(t as tf.Tensor4D, 3, 2, 'same')))(a),
      tf.grad((t: tf.Tensor) => loss(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid')))(a),
    ]);
  });

  it('avg-pool and global average pool', async () => {
    await expectSameOnWasm([x], (a) => [
      tf.grad((t: tf.Tensor) => loss(tf.avgPool(t as tf.Tensor4D, 3, 2, 'same')))(a),
      tf.grad((t: tf.Tensor) => loss(tf.mean(t, [1, 2])))(a),
    ]);
  });

  it('batch norm in training mode (moments + batchNorm), relu, add', async () => {
    await expectSameOnWasm([x, { shape: [4], seed: 17 }, { shape: [4], seed: 18 }], (a, gamma, beta) =>
      tf.grads((t: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(t, [0, 1, 2]);
        const y = tf.batchNorm4d(t as tf.Tensor4D, mean as tf.Tensor1D, variance as tf.Tensor1D, b as tf.Tensor1D, g.add(1) as tf.Tensor1D, 1e-5);
        return loss(tf.relu(tf.add(y, t)));
      })([a, gamma, beta]),
    );
  });

  it('batch norm with fixed statistics (inference-mode graph)', async () => {
    const channel = (seed: number) => ({ shape: [4], seed });
    await expectSameOnWasm([x, channel(19), channel(20), channel(24), channel(25)], (a, m, v, g, b) =>
      tf.grads((t: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) =>
        loss(tf.batchNorm4d(t as tf.Tensor4D, mean as tf.Tensor1D, tf.add(tf.abs(variance), 0.5) as tf.Tensor1D, beta as tf.Tensor1D, gamma as tf.Tensor1D, 1e-3)),
      )([a, m, v, g, b]),
    );
  });
});

describe('per-channel Sum and Mean (leading axes as XNNPACK average pools) match cpu', () => {
  it.each([
    ['NHWC over N, H, W', [6, 7, 5, 3], [0, 1, 2]],
    ['NHWC over N, H', [4, 5, 6, 2], [0, 1]],
    ['rows of a matrix (dense bias gradient)', [37, 9], [0]],
    ['negative axes', [3, 4, 5], [-3, -2]],
    ['4,100 rows: two pooling stages', [4100, 3], [0]],
    ['4,099 rows (prime, above one window): pooled whole', [4099, 2], [0]],
  ] as [string, number[], number[]][])('%s', async (_label, shape, axes) => {
    await expectSameOnWasm([{ shape, seed: 31 }], (a) => [
      tf.sum(a, axes),
      tf.mean(a, axes),
      tf.sum(a, axes, true),
      tf.mean(a, axes, true),
    ]);
    // keepDims shapes agree with the stock contract
    const wasmShape = tf.tidy(() => tf.sum(tf.zeros(shape), axes, true).shape);
    expect(wasmShape).toEqual(shape.map((d, i) => (axes.map((a) => (a + shape.length) % shape.length).includes(i) ? 1 : d)));
  });

  it('other reductions (inner axes, all axes, int32) still go to the stock kernels', async () => {
    await expectSameOnWasm([{ shape: [4, 6, 5], seed: 32 }], (a) => [tf.sum(a, [1, 2]), tf.mean(a), tf.sum(a, 1), tf.mean(a, [0, 2])]);
    await tf.setBackend('wasm');
    expect(tf.tidy(() => Array.from(tf.sum(tf.tensor2d([[1, 2], [3, 4]], undefined, 'int32'), 0).dataSync()))).toEqual([4, 6]);
  });

  it('is what the stock wasm kernels compute, on a 28x28 activation batch', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor(values(32 * 28 * 28 * 16, 33), [32, 28, 28, 16]);
    const ours = tf.tidy(() => [tf.sum(x, [0, 1, 2]), tf.mean(x, [0, 1, 2])].map((t) => t.dataSync() as Float32Array));
    unregisterWasmTrainingKernels();
    const stock = tf.tidy(() => [tf.sum(x, [0, 1, 2]), tf.mean(x, [0, 1, 2])].map((t) => t.dataSync() as Float32Array));
    registerWasmTrainingKernels();
    x.dispose();
    ours.forEach((o, i) => expect(relError(stock[i], o)).toBeLessThan(REL_TOL));
  });
});

describe('Identity shares memory on wasm', () => {
  it('a clone costs no memory, keeps its values after the original is disposed, and frees with the last reference', async () => {
    await tf.setBackend('wasm');
    const buffers = (): number => tf.memory().numDataBuffers;
    const before = buffers();
    const x = tf.tensor(values(1000, 41), [10, 100]);
    const copy = tf.clone(x);
    expect(buffers() - before).toBe(1); // stock wasm Identity: 2
    const expected = Array.from(x.dataSync());
    x.dispose();
    expect(buffers() - before).toBe(1);
    expect(Array.from(copy.dataSync())).toEqual(expected);
    copy.dispose();
    expect(buffers()).toBe(before);
  });

  it('strings still go to the stock kernel', async () => {
    await tf.setBackend('wasm');
    expect(tf.tidy(() => tf.clone(tf.tensor(['a', 'b'])).arraySync())).toEqual(['a', 'b']);
  });
});

describe('Cast to the same dtype shares memory on wasm', () => {
  it('float32 → float32 costs no buffer and keeps the values; other casts still convert', async () => {
    await tf.setBackend('wasm');
    const buffers = (): number => tf.memory().numDataBuffers;
    const x = tf.tensor(values(600, 43), [20, 30]);
    const before = buffers();
    const same = tf.cast(x, 'float32');
    expect(buffers() - before).toBe(0); // stock wasm Cast: a full copy
    const expected = Array.from(x.dataSync());
    x.dispose();
    expect(Array.from(same.dataSync())).toEqual(expected);
    const ints = tf.tidy(() => tf.cast(tf.mul(same, 10), 'int32'));
    expect(ints.dtype).toBe('int32');
    // float32 product, truncated toward zero (| 0 turns −0 into 0)
    expect(Array.from(ints.dataSync())).toEqual(expected.map((v) => Math.trunc(Math.fround(v * 10)) | 0));
    tf.dispose([same, ints]);
  });
});

/** Gradients of a scalar loss w.r.t. every trainable weight of `model`, as arrays. */
function weightGrads(model: tf.LayersModel, input: tf.Tensor): Float32Array[] {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { grads } = tf.variableGrads(() => {
    const y = model.apply(input, { training: true }) as tf.Tensor;
    return tf.sum(tf.mul(y, tf.cos(tf.range(0, y.size).reshape(y.shape))));
  }, vars);
  return vars.map((v) => grads[v.name].dataSync() as Float32Array);
}

async function encoderGradsOn(backend: Backend, build: () => tf.LayersModel, inputShape: number[]) {
  await tf.setBackend(backend);
  // the same seeded initial weights on both backends, so a failure reproduces
  const model = withSeededRandom(WEIGHT_SEED, build);
  const input = tf.tensor(values(inputShape.reduce((a, b) => a * b, 1), 21), inputShape);
  const grads = tf.tidy(() => weightGrads(model, input));
  input.dispose();
  model.dispose();
  return grads;
}

describe('encoder gradients match cpu', () => {
  it.each([
    // The shipped architecture at 8 px: at 28 px the cpu reference takes minutes.
    ['resnet-mini (shipped encoder) at 8x8x1', () => buildResNet({ ...RESNET_PRESETS['resnet-mini'], inputSize: 8, channels: 1 }), [2, 8, 8, 1]],
    [
      'imagenet stem (7x7/2 conv + 3x3/2 max-pool), bottleneck blocks',
      () => buildResNet({ stem: 'imagenet', block: 'bottleneck', stages: [1, 1], widths: [8, 16], widthMultiplier: 1, inputSize: 32, channels: 3 }),
      [2, 32, 32, 3],
    ],
  ] as const)('%s', async (_name, build, inputShape) => {
    const ref = await encoderGradsOn('cpu', build, [...inputShape]);
    const got = await encoderGradsOn('wasm', build, [...inputShape]);
    // Some gradients are zero in exact arithmetic: the stem's batch-norm β when every max-pool window
    // wins with a positive value (the next batch norms cancel a uniform shift), leaving float noise on
    // both backends. Errors are therefore measured against at least 1% of the largest gradient.
    const scale = 0.01 * Math.max(...ref.map((g) => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
    ref.forEach((g, i) => expect(relError(g, got[i], scale)).toBeLessThan(1e-3));
  });
});

describe('training', () => {
  /** Conv/BN/ReLU/pool/depthwise/residual net small enough for the cpu backend. */
  function smallNet(): tf.LayersModel {
    const input = tf.input({ shape: [12, 12, 1] });
    const conv = (filters: number, k: number, s: number) => tf.layers.conv2d({ filters, kernelSize: k, strides: s, padding: 'same', useBias: false });
    let x = conv(8, 3, 1).apply(input) as tf.SymbolicTensor;
    x = tf.layers.batchNormalization().apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }).apply(x) as tf.SymbolicTensor;
    const branch = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', depthMultiplier: 1 }).apply(x) as tf.SymbolicTensor;
    const main = conv(16, 3, 2).apply(branch) as tf.SymbolicTensor;
    const shortcut = conv(16, 1, 2).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU().apply(tf.layers.add().apply([main, shortcut])) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 4 }).apply(x) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: out });
  }

  async function train(backend: Backend) {
    await tf.setBackend(backend);
    const model = withSeededRandom(WEIGHT_SEED, smallNet);
    const x = tf.tensor(values(8 * 12 * 12, 22), [8, 12, 12, 1]);
    const target = tf.tensor(values(8 * 4, 23), [8, 4]);
    const optimizer = tf.train.adam(0.01);
    const losses: number[] = [];
    const tensorCounts: number[] = [];
    for (let step = 0; step < 20; step++) {
      const loss = optimizer.minimize(() => tf.losses.meanSquaredError(target, model.apply(x, { training: true }) as tf.Tensor), true) as tf.Scalar;
      losses.push(loss.dataSync()[0]);
      loss.dispose();
      tensorCounts.push(tf.memory().numTensors);
    }
    tf.dispose([x, target]);
    optimizer.dispose();
    model.dispose();
    return { losses, tensorCounts };
  }

  it('20 Adam steps end with the same loss on wasm and cpu, without leaking tensors', async () => {
    const ref = await train('cpu');
    const got = await train('wasm');
    expect(got.losses[19]).toBeLessThan(got.losses[0]);
    expect(Math.abs(got.losses[19] - ref.losses[19]) / ref.losses[19]).toBeLessThan(1e-3);
    // After the optimizer's slots exist (step 1), the tensor count must not grow.
    expect(new Set(got.tensorCounts.slice(1)).size).toBe(1);
  });
});
