import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';

tf.env().set('IS_TEST', true); // silences the 'install tfjs-node' banner

export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}

export const value = (t: tf.Tensor): number => {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};

export const t2 = (rows: number[][]): tf.Tensor2D => tf.tensor2d(rows);
export const ids = (v: number[]): tf.Tensor1D => tf.tensor1d(v, 'int32');
