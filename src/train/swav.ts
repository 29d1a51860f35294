/**
 * SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
 * Assignments", https://arxiv.org/abs/2006.09882): projections are scored against K learnable
 * prototypes (unit rows, renormalised before every step), codes come from Sinkhorn-Knopp, and each
 * view predicts the codes of the others (src/losses/swav.ts).
 *
 * Extra settings: temperature τ (default 0.1), epsilon ε (0.05), sinkhornIterations (3),
 * prototypes K (100; the paper uses 3000 on ImageNet), freezePrototypesEpochs (1: "we freeze the
 * prototypes during the first epoch"). Not implemented: multi-crop and the feature queue for small
 * batches. State (checkpointed): the prototypes (also optimised as an extra variable).
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../augment/rng';
import { l2Normalize, stopGradient } from '../losses/common';
import { swavLoss } from '../losses/swav';
import { ContrastiveMethod, MethodConfig, MethodContext, MethodState, num, RawConfig, requireViews, TrainBatch } from './method';

export interface SwAVConfig extends MethodConfig {
  epsilon: number;
  sinkhornIterations: number;
  prototypes: number;
  freezePrototypesEpochs: number;
}

export class SwAV extends ContrastiveMethod<SwAVConfig> {
  static override readonly methodName: string = 'swav';

  static override configure(raw: RawConfig): SwAVConfig {
    const base = requireViews(super.configure({ temperature: 0.1, ...raw }), 2, 'swav');
    const cfg: SwAVConfig = {
      ...base,
      epsilon: num(raw, 'epsilon', 0.05),
      sinkhornIterations: num(raw, 'sinkhornIterations', 3),
      prototypes: num(raw, 'prototypes', 100),
      freezePrototypesEpochs: num(raw, 'freezePrototypesEpochs', 1),
    };
    if (!(cfg.epsilon > 0)) throw new RangeError(`epsilon must be > 0, got ${cfg.epsilon}`);
    if (!Number.isInteger(cfg.prototypes) || cfg.prototypes < 2) throw new RangeError(`prototypes must be an integer >= 2, got ${cfg.prototypes}`);
    return cfg;
  }

  /** [K, P] prototype vectors c_k. */
  readonly prototypes: tf.Variable;

  constructor(encoder: tf.LayersModel, cfg: SwAVConfig, ctx: MethodContext) {
    super(encoder, cfg, ctx);
    const rng = new Rng(ctx.seed ^ 0x73776176);
    const init = Float32Array.from({ length: cfg.prototypes * cfg.projectionDim }, () => rng.uniform(-1, 1));
    const unit = tf.tidy(() => l2Normalize(tf.tensor2d(init, [cfg.prototypes, cfg.projectionDim])));
    this.prototypes = tf.variable(unit, true, `swav_prototypes_${ctx.seed}_${Date.now()}`);
    unit.dispose();
  }

  protected override extraVariables(): tf.Variable[] {
    return [this.prototypes];
  }

  /** "we normalize the prototypes at each iteration" (no gradient). */
  override beforeStep(): void {
    tf.tidy(() => this.prototypes.assign(l2Normalize(this.prototypes)));
  }

  override computeLoss(batch: TrainBatch): tf.Scalar {
    const frozen = batch.epoch < this.cfg.freezePrototypesEpochs;
    const c = frozen ? stopGradient(this.prototypes as tf.Tensor2D) : (this.prototypes as tf.Tensor2D); // [K, P]
    const scores = this.projectViews(batch).map((z) => l2Normalize(z).matMul(c, false, true) as tf.Tensor2D); // V × [N, K]
    return swavLoss(scores, { temperature: this.cfg.temperature, epsilon: this.cfg.epsilon, iterations: this.cfg.sinkhornIterations });
  }

  override getState(): MethodState {
    return { tensors: { 'swav/prototypes': this.prototypes }, json: {} };
  }

  override setState(state: MethodState): void {
    const p = state.tensors['swav/prototypes'];
    if (!p || p.shape.join() !== this.prototypes.shape.join()) throw new Error(`checkpoint lacks swav prototypes of [${this.prototypes.shape.join(', ')}]`);
    this.prototypes.assign(p);
  }

  override dispose(): void {
    this.prototypes.dispose();
    super.dispose();
  }
}
