import * as tf from '@tensorflow/tfjs';

/** Mean milliseconds of `f` over `iters` runs after one warm-up run; `f` returns what to dispose. */
export async function meanMs(iters: number, f: () => tf.Tensor | tf.Tensor[]): Promise<number> {
  const once = async (): Promise<void> => {
    const out = ([] as tf.Tensor[]).concat(f());
    await out[0].data();
    tf.dispose(out);
  };
  await once();
  const start = performance.now();
  for (let i = 0; i < iters; i++) await once();
  return (performance.now() - start) / iters;
}
