/** Helpers the tfjs benchmarks share: timing, rounding for the JSON line, and the machine it ran on. */
import * as os from 'node:os';
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

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** `v` with `digits` decimals, as a number for the JSON line. */
export const roundTo = (v: number, digits: number): number => Number(v.toFixed(digits));

/** Cores, architecture, Node and tfjs versions: the "machine" field of a benchmark's JSON line. */
export function machine(): string {
  return `${os.cpus().length}-core ${os.arch()}, Node ${process.versions.node}, tfjs ${tf.version.tfjs}`;
}
