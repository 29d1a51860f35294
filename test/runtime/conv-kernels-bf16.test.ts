/**
 * --conv-kernels onednn-bf16 through initBackend: on a CPU with AVX512-BF16 (or AMX) the backend says so
 * and a convolution's result carries bf16's rounding; elsewhere it refuses to start, naming what the CPU
 * lacks. (The kernels' numbers, op by op, are in onednn-conv.test.ts.) Skipped where the addon is not built.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/runtime/backend';
import { DnnlConvAddon, loadDnnlConv } from '../../src/runtime/kernels/onednn-conv';
import { relError, values } from '../numeric';

const loaded = loadDnnlConv();
if (typeof loaded === 'string' && process.env.CI) throw new Error(`CI installs libdnnl-dev, so the oneDNN addon must load: ${loaded}`);

(typeof loaded === 'string' ? describe.skip : describe)('--conv-kernels onednn-bf16', () => {
  const addon = loaded as DnnlConvAddon;

  afterAll(async () => {
    // the precision is the thread's: later test files in this worker expect float32
    addon.setConvPrecision('f32');
    await tf.setBackend('cpu');
  });

  it('runs the convolutions with bf16 inputs where the CPU has them, or refuses naming what it lacks', async () => {
    let canBf16 = true;
    try {
      addon.setConvPrecision('bf16');
      addon.setConvPrecision('f32');
    } catch {
      canBf16 = false;
    }
    if (!canBf16) {
      await expect(initBackend('wasm', { convKernels: 'onednn-bf16' })).rejects.toThrow(/--conv-kernels onednn-bf16: bf16 convolutions need a CPU with AVX512-BF16 or AMX/);
      return;
    }
    const info = await initBackend('wasm', { convKernels: 'onednn-bf16' });
    expect(info.convolutions).toMatch(/^oneDNN .*, bf16 inputs$/);
    const conv = () => tf.tidy(() => tf.conv2d(tf.tensor4d(values(2 * 9 * 9 * 16, 1), [2, 9, 9, 16]), tf.tensor4d(values(3 * 3 * 16 * 8, 2), [3, 3, 16, 8]), 1, 'same').dataSync() as Float32Array);
    const got = conv();
    await tf.setBackend('cpu');
    const ref = conv();
    expect(relError(ref, got)).toBeLessThan(1e-2);
    expect(relError(ref, got)).toBeGreaterThan(1e-5);
  });
});
