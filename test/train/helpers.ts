import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

tf.env().set('IS_TEST', true); // silences the 'install tfjs-node' banner

/** Training tests run on the plain cpu backend (see src/train/cpu-conv-filter-grad.ts). */
export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `likeness-${prefix}-`));
}

/** A tiny encoder for tests: resnet-mini's layout with 4-16 channels. */
export const TINY_ENCODER = { arch: 'resnet-mini', widths: [4, 8, 16] };
export const TINY_HEAD = { projectionHiddenDim: 32, projectionDim: 16 };
/** Mild augmentations for 16 px images (larger crops, no blur). */
export const SMALL_AUGMENT = { cropScale: [0.3, 1] as [number, number], blurProb: 0, jitterStrength: 0.5 };

/** Runs a named scenario of scenarios.ts in a worker thread and returns its JSON result. */
export async function runScenario<T>(scenario: string): Promise<T> {
  const { startWorker } = await import('../../src/runtime/worker-script');
  const worker = startWorker(__dirname, 'scenarios', { workerData: { scenario } });
  try {
    const msg = await new Promise<{ ok: boolean; value?: T; error?: string }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`scenario ${scenario} exited with code ${code}`)));
    });
    if (!msg.ok) throw new Error(`scenario ${scenario} failed: ${msg.error}`);
    return msg.value as T;
  } finally {
    await worker.terminate();
  }
}
