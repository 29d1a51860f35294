/**
 * What a Winograd F(2x2, 3x3) convolution built from tfjs ops could gain on wasm: each ResNet-18 stage's
 * 3x3 stride-1 convolution (XNNPACK) against the 16 batched matrix products Winograd would run instead
 * (2.25x fewer multiplications): as one batched tf.matMul of [16, tiles, C] x [16, C, C], and as 16 matrix
 * products of [tiles, C] x [C, C]; same backend, same run. Transforms are not counted.
 * Prints one JSON line.
 *
 *   npx tsx bench/conv-vs-matmul.ts [--batch 128] [--threads 2] [--iters 3]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend';
import { arg } from './args';

async function msPerCall(f: () => tf.Tensor, iters: number): Promise<number> {
  const warm = f();
  await warm.data();
  warm.dispose();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) {
    const y = f();
    await y.data();
    y.dispose();
  }
  return (performance.now() - t0) / iters;
}

async function main(): Promise<void> {
  const n = Number(arg('batch', 'BENCH_BATCH', '128'));
  const iters = Number(arg('iters', 'BENCH_ITERS', '3'));
  const backend = await initBackend('wasm', { wasmThreads: Number(arg('threads', 'BENCH_THREADS', '2')) });
  const layers = [];
  for (const [side, c] of [[28, 64], [14, 128], [7, 256], [4, 512]]) {
    const x = tf.randomNormal([n, side, side, c]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, c, c]) as tf.Tensor4D;
    const tiles = n * Math.ceil(side / 2) ** 2;
    const v = tf.randomNormal([16, tiles, c]) as tf.Tensor3D;
    const u = tf.randomNormal([16, c, c]) as tf.Tensor3D;
    const convMs = await msPerCall(() => tf.conv2d(x, w, 1, 'same'), iters);
    const matMulMs = await msPerCall(() => tf.matMul(v, u), iters);
    const [vs, us] = [tf.unstack(v) as tf.Tensor2D[], tf.unstack(u) as tf.Tensor2D[]];
    const sixteenMs = await msPerCall(() => tf.tidy(() => tf.stack(vs.map((vi, i) => tf.matMul(vi, us[i])))), iters);
    tf.dispose([...vs, ...us]);
    const gflop = { conv: (2 * n * side * side * 9 * c * c) / 1e9, matMul: (2 * 16 * tiles * c * c) / 1e9 };
    layers.push({
      input: `${side}x${side}x${c}`,
      convMs: +convMs.toFixed(1),
      convGflopPerS: +(gflop.conv / (convMs / 1000)).toFixed(1),
      winogradMatMulMs: +matMulMs.toFixed(1),
      matMulGflopPerS: +(gflop.matMul / (matMulMs / 1000)).toFixed(2),
      matMulOverConv: +(matMulMs / convMs).toFixed(1),
      sixteen2dMatMulMs: +sixteenMs.toFixed(1),
      sixteen2dGflopPerS: +(gflop.matMul / (sixteenMs / 1000)).toFixed(1),
      sixteen2dOverConv: +(sixteenMs / convMs).toFixed(2),
    });
    tf.dispose([x, w, v, u]);
  }
  console.log(JSON.stringify({ bench: 'conv-vs-matmul', backend: `${backend.name}/${backend.threads}`, batch: n, layers }));
}

void main();
