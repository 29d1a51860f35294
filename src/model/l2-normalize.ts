/**
 * A layer that scales each row to unit length. tfjs has none built in; whitening (whiten.ts) needs
 * its input on the unit sphere, as every served embedding is, so that it is fitted on and applied to
 * the same geometry. Registered for tf.loadLayersModel (model-dir.ts imports this module).
 */
import * as tf from '@tensorflow/tfjs';

export class L2Normalize extends tf.layers.Layer {
  static className = 'LikenessL2Normalize';

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      return x.div(x.norm('euclidean', -1, true).maximum(1e-12));
    });
  }
}

tf.serialization.registerClass(L2Normalize);
