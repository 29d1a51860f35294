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
