/**
 * Inference engines: normalised pixels in, unit-length embeddings out, one batch per call.
 * LocalEngine runs the model in the calling thread; WorkerPoolEngine (worker-pool.ts) spreads
 * batches over worker threads, each with its own backend, to use every core.
 */
import * as tf from '@tensorflow/tfjs';
import { pixelsToTensor } from '../images/preprocess';
import type { TtaMode } from '../model/manifest';
import { LoadedModel, loadModelDir } from '../model/model-dir';

export interface InferenceEngine {
  /** pixels: `count` images of the model's input size, bytes as decodeToPixels returns. Result: [count * dim]. */
  run(pixels: Uint8Array, count: number): Promise<Float32Array>;
  close(): Promise<void>;
}

export function unitRows(v: tf.Tensor2D): tf.Tensor2D {
  return v.div(v.norm('euclidean', 1, true).maximum(1e-12)) as tf.Tensor2D; // [N, D] / [N, 1]
}

/** The batch and its mirror images, as one input of 2N: what flip averaging runs through the network. */
export function withMirrors(x: tf.Tensor4D): tf.Tensor4D {
  return tf.concat([x, x.reverse(2)], 0); // [2N, H, W, C]
}

/** Unit rows [2N, D] of a batch and its mirrors → the normalised mean of each image's two rows [N, D]. */
export function flipAverage(emb: tf.Tensor2D): tf.Tensor2D {
  const n = emb.shape[0] / 2;
  return unitRows(emb.slice(0, n).add(emb.slice(n, n)));
}

/**
 * Forward pass + L2 normalisation: the served embedding is always unit length. With tta 'hflip' the
 * batch and its mirror images go through the network as one call of 2N, and each image gets the
 * normalised mean of its two unit vectors (flip averaging, as in test-time augmentation for
 * classifiers; it makes the embedding of an image and of its mirror image the same).
 */
export function embedTensor(loaded: Pick<LoadedModel, 'model' | 'embeddingOutput'>, x: tf.Tensor4D, tta?: TtaMode): tf.Tensor2D {
  return tf.tidy(() => {
    const flip = tta === 'hflip';
    const out = loaded.model.predict(flip ? withMirrors(x) : x);
    const emb = unitRows((Array.isArray(out) ? out[loaded.embeddingOutput] : out) as tf.Tensor2D); // [N or 2N, D]
    return flip ? flipAverage(emb) : emb;
  });
}

export class LocalEngine implements InferenceEngine {
  private constructor(readonly loaded: LoadedModel) {}

  static async open(modelDir: string, tta?: TtaMode): Promise<LocalEngine> {
    return new LocalEngine(await loadModelDir(modelDir, tta));
  }

  async run(pixels: Uint8Array, count: number): Promise<Float32Array> {
    const x = pixelsToTensor(pixels, count, this.loaded.manifest.input);
    const y = embedTensor(this.loaded, x, this.loaded.manifest.embedding.tta);
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
