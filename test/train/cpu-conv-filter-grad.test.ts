import * as tf from '@tensorflow/tfjs';
import { registerFastCpuConvFilterGrad, unregisterFastCpuConvFilterGrad } from '../../src/train/cpu-conv-filter-grad';
import { useCpu } from './helpers';

beforeAll(useCpu);
afterAll(unregisterFastCpuConvFilterGrad);

const cases: Array<{ x: [number, number, number, number]; f: [number, number, number, number]; s: number; pad: 'same' | 'valid' }> = [
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], s: 1, pad: 'same' },
  { x: [2, 8, 8, 2], f: [3, 3, 2, 5], s: 2, pad: 'same' },
  { x: [1, 9, 6, 3], f: [3, 2, 3, 2], s: 2, pad: 'valid' },
  { x: [3, 6, 6, 4], f: [1, 1, 4, 6], s: 2, pad: 'same' },
];

describe('fast cpu Conv2DBackpropFilter', () => {
  it.each(cases)('matches the stock kernel for x %j', ({ x, f, s, pad }) => {
    const input = tf.randomNormal(x, 0, 1, 'float32', 1) as tf.Tensor4D;
    const out = tf.conv2d(input, tf.zeros(f) as tf.Tensor4D, s, pad);
    const dy = tf.randomNormal(out.shape, 0, 1, 'float32', 2) as tf.Tensor4D;
    // d/dW Σ conv2d(x, W)·dy runs the Conv2DBackpropFilter kernel with that dy.
    const dW = (): tf.Tensor => tf.grad((w: tf.Tensor) => tf.conv2d(input, w as tf.Tensor4D, s, pad).mul(dy).sum())(tf.zeros(f));
    unregisterFastCpuConvFilterGrad();
    const stock = dW().arraySync();
    registerFastCpuConvFilterGrad();
    const fast = dW();
    expect(fast.shape).toEqual(f);
    const diff = tf.sub(fast, tf.tensor(stock)).abs().max().dataSync()[0];
    expect(diff).toBeLessThan(1e-4);
  });
});
