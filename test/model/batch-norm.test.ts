/**
 * The fused batch-norm layer against tfjs-layers' stock layer: outputs, gradients (x, γ, β), moving
 * averages, inference, serialisation; on cpu and on wasm, whose results must match cpu's stock layer;
 * and, where the oneDNN addon is built (CI installs libdnnl-dev), its fused training kernels.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { BatchNormalization, channelAffine, hasFusedBatchNorm } from '../../src/model/batch-norm';
import { fileSystem } from '../../src/model/fs-io';
import { buildResNet, RESNET_PRESETS } from '../../src/model/resnet';
import { DnnlConvAddon, loadDnnlConv } from '../../src/runtime/kernels/onednn-conv';
import { registerOnednnConvKernels, registerWasmTrainingKernels, unregisterWasmTrainingKernels } from '../../src/runtime/wasm-kernels';
import { relError, values } from '../numeric';

type Backend = 'cpu' | 'wasm';

interface Result {
  /** y, dx, dγ, dβ, then moving mean and variance after two training calls. */
  arrays: Float32Array[];
  inference: Float32Array;
}

/**
 * Two training calls of a fresh layer on x = 3·u + 0.7 (an off-centre activation) with loss Σ y·w,
 * then one inference call. The second call shows the moving averages compound as the stock ones do.
 */
async function runLayer(backend: Backend, stock: boolean, shape: number[]): Promise<Result> {
  await tf.setBackend(backend);
  const c = shape[shape.length - 1];
  const layer = stock ? tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5 }) : new BatchNormalization({ momentum: 0.9, epsilon: 1e-5 });
  layer.build(shape);
  layer.setWeights([
    tf.tensor(values(c, 3)).add(1),
    tf.tensor(values(c, 4)),
    tf.tensor(values(c, 5)),
    tf.tensor(values(c, 6)).add(1),
  ]);
  const n = shape.reduce((a, b) => a * b, 1);
  const x = tf.tidy(() => tf.tensor(values(n, 1), shape).mul(3).add(0.7));
  const w = tf.tensor(values(n, 2), shape);
  const [gamma, beta] = layer.trainableWeights.map((v) => v.read() as tf.Variable);
  const arrays = tf.tidy(() => {
    const y = layer.apply(x, { training: true }) as tf.Tensor;
    const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(layer.apply(input, { training: true }) as tf.Tensor, w)))(x);
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, w)) as tf.Scalar, [gamma, beta]);
    return [y, dx, grads[gamma.name], grads[beta.name]].map((t) => t.dataSync() as Float32Array);
  });
  // three training calls so far (y, dx, variableGrads)
  const moving = layer.getWeights().slice(2).map((t) => t.dataSync() as Float32Array);
  const inference = tf.tidy(() => (layer.apply(x, { training: false }) as tf.Tensor).dataSync() as Float32Array);
  tf.dispose([x, w]);
  layer.weights.forEach((v) => v.dispose());
  return { arrays: [...arrays, ...moving], inference };
}

beforeAll(() => {
  registerWasmTrainingKernels();
});

afterAll(async () => {
  await tf.setBackend('cpu');
});

describe('BatchNormalization (fused training pass)', () => {
  it.each([
    ['NHWC activations', [4, 5, 6, 3]],
    ['a dense layer (batch x features)', [16, 8]],
  ])('matches the stock layer on cpu: %s', async (_name, shape) => {
    const stock = await runLayer('cpu', true, shape);
    const fused = await runLayer('cpu', false, shape);
    stock.arrays.forEach((ref, i) => expect(relError(ref, fused.arrays[i])).toBeLessThan(1e-5));
    expect(relError(stock.inference, fused.inference)).toBeLessThan(1e-6);
  });

  it('on wasm matches the stock layer on cpu, at a training-sized activation', async () => {
    const shape = [32, 14, 14, 16];
    const stock = await runLayer('cpu', true, shape);
    const fused = await runLayer('wasm', false, shape);
    stock.arrays.forEach((ref, i) => expect(relError(ref, fused.arrays[i])).toBeLessThan(1e-4));
    expect(relError(stock.inference, fused.inference)).toBeLessThan(1e-5);
  });

  it('keeps no tensors between training steps', async () => {
    await tf.setBackend('wasm');
    const layer = new BatchNormalization({});
    layer.build([8, 4, 4, 6]);
    const x = tf.randomNormal([8, 4, 4, 6]);
    const step = (): void => {
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(layer.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
        tf.dispose(grads);
      });
    };
    step();
    const before = tf.memory().numTensors;
    step();
    step();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    layer.weights.forEach((v) => v.dispose());
  });

  it('is the class a saved encoder loads as, and saves as a plain BatchNormalization', async () => {
    await tf.setBackend('cpu');
    const encoder = buildResNet({ ...RESNET_PRESETS['resnet-mini'], widths: [4, 8, 8], inputSize: 8, channels: 1 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-bn-'));
    try {
      await encoder.save(fileSystem(dir));
      const topology = JSON.stringify(JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')).modelTopology);
      expect(topology).toContain('"class_name":"BatchNormalization"');
      const loaded = await tf.loadLayersModel(fileSystem(dir));
      const bns = loaded.layers.filter((l) => l.getClassName() === 'BatchNormalization');
      expect(bns.length).toBeGreaterThan(0);
      bns.forEach((l) => expect(l).toBeInstanceOf(BatchNormalization));
      const input = tf.tensor(values(2 * 64, 9), [2, 8, 8, 1]);
      const same = tf.tidy(() => relError((encoder.predict(input) as tf.Tensor).dataSync() as Float32Array, (loaded.predict(input) as tf.Tensor).dataSync() as Float32Array));
      expect(same).toBeLessThan(1e-6);
      input.dispose();
      loaded.dispose();
    } finally {
      encoder.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('channelAffine', () => {
  it.each<[Backend, number[]]>([
    ['cpu', [2, 3, 3, 4]],
    ['wasm', [2, 3, 3, 4]],
    ['wasm', [5, 4]],
  ])('on %s is x·scale + shift per channel for shape %j', async (backend, shape) => {
    await tf.setBackend(backend);
    const c = shape[shape.length - 1];
    const n = shape.reduce((a, b) => a * b, 1);
    const [got, want] = tf.tidy(() => {
      const x = tf.tensor(values(n, 7), shape);
      const scale = tf.tensor(values(c, 8));
      const shift = tf.tensor(values(c, 9));
      return [channelAffine(x, scale, shift), tf.add(tf.mul(x, scale), shift)].map((t) => {
        expect(t.shape).toEqual(shape);
        return t.dataSync() as Float32Array;
      });
    });
    expect(relError(want, got)).toBeLessThan(1e-6);
  });
});

const addon = loadDnnlConv();
if (typeof addon === 'string' && process.env.CI) throw new Error(`CI installs libdnnl-dev, so the oneDNN addon must load: ${addon}`);

(typeof addon === 'string' ? describe.skip : describe)('BatchNormalization on wasm with oneDNN (one fused kernel each way)', () => {
  const dnnl = addon as DnnlConvAddon;
  /** Batch-norm calls [forward, backward] that reached oneDNN. */
  const calls = [0, 0];
  const counting: DnnlConvAddon = {
    run: (...args) => dnnl.run(...args),
    setThreads: (n) => dnnl.setThreads(n),
    setConvPrecision: (name) => dnnl.setConvPrecision(name),
    version: () => dnnl.version(),
    batchNorm: (...args) => {
      calls[0]++;
      dnnl.batchNorm(...args);
    },
    batchNormBackward: (...args) => {
      calls[1]++;
      dnnl.batchNormBackward(...args);
    },
  };

  beforeAll(() => {
    registerOnednnConvKernels(counting);
  });

  afterAll(() => {
    // Leave the wasm kernels as the other tests expect them: training kernels, no oneDNN.
    unregisterWasmTrainingKernels();
    registerWasmTrainingKernels();
  });

  it.each([
    ['NHWC activations', [4, 5, 6, 3]],
    ['a dense layer (batch x features)', [16, 8]],
    ['a training-sized activation', [32, 14, 14, 16]],
    ['one value per channel (variance 0)', [1, 1, 1, 5]],
  ])('matches the stock layer on cpu: %s', async (_name, shape) => {
    const stock = await runLayer('cpu', true, shape);
    const before = [...calls];
    const fused = await runLayer('wasm', false, shape);
    // three training calls (y, dx under tf.grad, variableGrads), two of them differentiated
    expect(calls.map((n, i) => n - before[i])).toEqual([3, 2]);
    stock.arrays.forEach((ref, i) => expect(relError(ref, fused.arrays[i])).toBeLessThan(1e-4));
    expect(relError(stock.inference, fused.inference)).toBeLessThan(1e-5);
  });

  it('trains a ResNet on wasm with the same gradients as the composite ops, keeping no tensors', async () => {
    await tf.setBackend('wasm');
    const encoder = buildResNet({ ...RESNET_PRESETS['resnet-mini'], widths: [8, 16, 16], inputSize: 12, channels: 1 });
    const x = tf.tensor(values(6 * 144, 11), [6, 12, 12, 1]).mul(2).add(0.3);
    const step = (): Float32Array[] =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(encoder.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
        return [value, ...encoder.trainableWeights.map((w) => grads[(w.read() as tf.Variable).name])].map((t) => t.dataSync() as Float32Array);
      });
    const moving = () => encoder.getWeights(false).filter((_, i) => !encoder.weights[i].trainable).map((t) => t.dataSync() as Float32Array);
    const start = moving();
    const before = [...calls];
    const fused = step();
    expect(calls[0] - before[0]).toBeGreaterThan(0);
    expect(calls[1] - before[1]).toBe(calls[0] - before[0]);
    const fusedMoving = moving();
    expect(hasFusedBatchNorm(x, 1e-3)).toBe(true);
    // what the addon would refuse takes the composite path: another dtype, ε outside (0, 1]
    expect(tf.tidy(() => hasFusedBatchNorm(tf.zeros([2, 3], 'int32'), 1e-3))).toBe(false);
    expect(hasFusedBatchNorm(x, 0)).toBe(false);
    expect(hasFusedBatchNorm(x, 1e-50)).toBe(false);
    // the same step through batchMoments + normalizeWithMoments, from the same moving averages
    unregisterWasmTrainingKernels();
    registerWasmTrainingKernels();
    let composite: Float32Array[];
    let compositeMoving: Float32Array[];
    try {
      expect(hasFusedBatchNorm(x, 1e-3)).toBe(false);
      encoder.setWeights(encoder.getWeights(false).map((t, i) => (encoder.weights[i].trainable ? t : tf.tensor(start.shift() as Float32Array, t.shape))));
      composite = step();
      compositeMoving = moving();
    } finally {
      registerOnednnConvKernels(counting);
    }
    composite.forEach((ref, i) => expect(relError(ref, fused[i])).toBeLessThan(1e-3));
    compositeMoving.forEach((ref, i) => expect(relError(ref, fusedMoving[i])).toBeLessThan(1e-5));
    const tensors = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(tensors);
    x.dispose();
    encoder.dispose();
  });

  it('refuses arrays that do not match the dims, and bad dims or epsilon, instead of reading past them', () => {
    const dims = [2, 3, 3, 4];
    const data = () => new Float32Array(72);
    const ch = () => new Float32Array(4);
    expect(() => dnnl.batchNorm(data(), data(), ch(), ch(), ch(), ch(), dims, 1e-3)).not.toThrow();
    expect(() => dnnl.batchNorm(new Float32Array(71), data(), ch(), ch(), ch(), ch(), dims, 1e-3)).toThrow(/x has 71 elements/);
    expect(() => dnnl.batchNorm(data(), data(), ch(), new Float32Array(3), ch(), ch(), dims, 1e-3)).toThrow(/shift has 3 elements/);
    expect(() => dnnl.batchNorm(data(), data(), ch(), ch(), ch(), ch(), [2, 3, 3], 1e-3)).toThrow(/4 integers/);
    expect(() => dnnl.batchNorm(data(), data(), ch(), ch(), ch(), ch(), [2, 0, 3, 4], 1e-3)).toThrow(/positive/);
    expect(() => dnnl.batchNorm(data(), data(), ch(), ch(), ch(), ch(), [2, 3, 3, 4.5], 1e-3)).toThrow(/integers/);
    expect(() => dnnl.batchNorm(data(), data(), ch(), ch(), ch(), ch(), dims, 1e-50)).toThrow(/epsilon/);
    expect(() => dnnl.batchNorm(data(), data(), ch(), ch(), ch(), ch(), [2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 4], 1e-3)).toThrow(/too large/);
    expect(() => dnnl.batchNorm(data(), data(), ch(), ch(), ch(), ch(), dims, 0)).toThrow(/epsilon/);
    expect(() => dnnl.batchNormBackward(data(), data(), ch(), ch(), ch(), data(), ch(), ch(), dims, 1e-3)).not.toThrow();
    expect(() => dnnl.batchNormBackward(data(), data(), ch(), ch(), ch(), new Float32Array(8), ch(), ch(), dims, 1e-3)).toThrow(/dx has 8 elements/);
    const short = dnnl.batchNormBackward as unknown as (...args: unknown[]) => void;
    expect(() => short(data(), data(), ch(), ch(), ch(), data(), ch(), ch(), dims)).toThrow(/10 arguments/);
  });
});
