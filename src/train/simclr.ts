/**
 * SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations",
 * https://arxiv.org/abs/2002.05709): two augmented views, encoder + MLP head, NT-Xent over the 2N
 * views of the batch. Extra settings: none beyond the base (temperature default 0.5).
 */
import * as tf from '@tensorflow/tfjs';
import { ntXent, viewIds } from '../losses/ntxent';
import { ContrastiveMethod, MethodConfig, RawConfig, requireViews, TrainBatch } from './method';

export class SimCLR extends ContrastiveMethod<MethodConfig> {
  static override readonly methodName: string = 'simclr';

  static override configure(raw: RawConfig): MethodConfig {
    return requireViews(super.configure({ temperature: 0.5, ...raw }), 2, 'simclr');
  }

  /** Positives: the other views of the same image (ids repeat once per view). */
  protected positiveIds(batch: TrainBatch): tf.Tensor1D {
    return viewIds(batch.indices.length, batch.views.length);
  }

  override lossFromProjections(zs: tf.Tensor2D[], batch: TrainBatch): tf.Scalar {
    const z = tf.concat(zs) as tf.Tensor2D; // [V·N, P], view-major
    return ntXent(z, this.positiveIds(batch), this.cfg.temperature);
  }
}
