/**
 * SupCon (Khosla et al. 2020, "Supervised Contrastive Learning", https://arxiv.org/abs/2004.11362):
 * SimCLR's pipeline with class labels as positive ids (L^sup_out, eq. 2). Needs a labelled dataset;
 * images with unknown label (−1) count as their own class. Extra settings: temperature default 0.1.
 */
import * as tf from '@tensorflow/tfjs';
import { supCon } from '../losses/supcon';
import { ContrastiveMethod, MethodConfig, RawConfig, TrainBatch } from './method';

export class SupCon extends ContrastiveMethod<MethodConfig> {
  static override readonly methodName: string = 'supcon';
  static override readonly supervised: boolean = true;

  static override configure(raw: RawConfig): MethodConfig {
    return super.configure({ temperature: 0.1, ...raw });
  }

  override lossFromProjections(zs: tf.Tensor2D[], batch: TrainBatch): tf.Scalar {
    if (!batch.labels) throw new Error('supcon needs a labelled dataset (class sub-folders, a manifest label column or IDX labels)');
    const n = batch.indices.length;
    // Unknown labels become unique negative ids, so such images are positives only of their own views.
    const ids = Int32Array.from(batch.labels, (l, i) => (l >= 0 ? l : -1 - batch.indices[i]));
    const z = tf.concat(zs) as tf.Tensor2D; // [V·N, P]
    return supCon(z, tf.tensor1d(ids.subarray(0, n), 'int32'), this.cfg.temperature);
  }
}
