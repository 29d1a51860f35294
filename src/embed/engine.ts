/**
 * Inference engines: normalised pixels in, unit-length embeddings out, one batch per call.
 * LocalEngine runs the model in the calling thread; WorkerPoolEngine (worker-pool.ts) spreads
 * batches over worker threads, each with its own backend, to use every core.
 */
import * as tf from '@tensorflow/tfjs';
import { pixelsToTensor } from '../images/preprocess';
import { LoadedModel, loadModelDir } from '../model/model-dir';

export interface InferenceEngine {
  /** pixels: `count` images of the model's input size, bytes as decodeToPixels returns. Result: [count * dim]. */
  run(pixels: Uint8Array, count: number): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Forward pass + L2 normalisation: the served embedding is always unit length. */
export function embedTensor(loaded: Pick<LoadedModel, 'model' | 'embeddingOutput'>, x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => {
    const out = loaded.model.predict(x);
    const emb = (Array.isArray(out) ? out[loaded.embeddingOutput] : out) as tf.Tensor2D; // [N, D]
    const norm = emb.norm('euclidean', 1, true).maximum(1e-12); // [N, 1]
    return emb.div(norm) as tf.Tensor2D;
  });
}

export class LocalEngine implements InferenceEngine {
  private constructor(readonly loaded: LoadedModel) {}

  static async open(modelDir: string): Promise<LocalEngine> {
    return new LocalEngine(await loadModelDir(modelDir));
  }

  async run(pixels: Uint8Array, count: number): Promise<Float32Array> {
    const x = pixelsToTensor(pixels, count, this.loaded.manifest.input);
    const y = embedTensor(this.loaded, x);
    x.dispose();
    try {
      return (await y.data()) as Float32Array;
    } finally {
      y.dispose();
    }
  }

  async close(): Promise<void> {
    this.loaded.model.dispose();
  }
}
