/**
 * Instance discrimination with a memory bank (Wu, Xiong, Yu, Lin 2018, "Unsupervised Feature
 * Learning via Non-Parametric Instance Discrimination", https://arxiv.org/abs/1805.01978): every
 * image is its own class; its embedding is contrasted, by NCE, with its own bank entry against m
 * entries drawn at random (src/losses/nce.ts). The bank is updated after each step with momentum
 * 0.5 (eq. 8 of the paper's proximal term aside); Z is estimated on the first step and then fixed.
 *
 * Extra settings: temperature (default 0.07), negatives m (4096, capped at dataset size − 1),
 * bankMomentum (0.5), views (default 1: the paper uses one augmented view per image), head: one
 * linear layer to 128 dimensions ("a linear layer maps the feature to 128-D" and L2 norm).
 * State (checkpointed): the bank and Z.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed, Rng } from '../augment/rng';
import { l2Normalize } from '../losses/common';
import { estimateLogZ, memoryBankNce } from '../losses/nce';
import { ProjectionHead } from '../model/heads';
import { MemoryBank } from './memory-bank';
import { ContrastiveMethod, MethodConfig, MethodContext, MethodState, num, RawConfig, TrainBatch } from './method';

export interface MemoryBankConfig extends MethodConfig {
  negatives: number;
  bankMomentum: number;
}

export class MemoryBankMethod extends ContrastiveMethod<MemoryBankConfig> {
  static override readonly methodName: string = 'membank';

  static override configure(raw: RawConfig): MemoryBankConfig {
    const base = super.configure({ temperature: 0.07, views: 1, ...raw });
    const cfg = { ...base, negatives: num(raw, 'negatives', 4096), bankMomentum: num(raw, 'bankMomentum', 0.5) };
    if (!Number.isInteger(cfg.negatives) || cfg.negatives < 1) throw new RangeError(`negatives must be a positive integer, got ${cfg.negatives}`);
    if (!(cfg.bankMomentum >= 0 && cfg.bankMomentum < 1)) throw new RangeError(`bankMomentum must be in [0, 1), got ${cfg.bankMomentum}`);
    return cfg;
  }

  readonly bank: MemoryBank;
  /** log of the normaliser Z, estimated on the first step (Wu et al.: "estimate once ... keep constant"). */
  logZ?: number;
  private positives?: tf.Tensor2D;
  private negatives?: tf.Tensor3D;
  private features?: tf.Tensor2D;

  constructor(encoder: tf.LayersModel, cfg: MemoryBankConfig, ctx: MethodContext) {
    super(encoder, cfg, ctx);
    this.bank = new MemoryBank(ctx.datasetSize, cfg.projectionDim, deriveSeed(ctx.seed, 0x6d62));
  }

  protected override buildHead(featureDim: number): ProjectionHead {
    return new ProjectionHead([{ in: featureDim, out: this.cfg.projectionDim, batchNorm: false, activation: 'linear', bias: true }]);
  }

  private get m(): number {
    return Math.min(this.cfg.negatives, this.ctx.datasetSize - 1);
  }

  /** Bank entries of the batch and m uniformly drawn noise entries per image (seeded by step). */
  override beforeStep(batch: TrainBatch): void {
    this.release();
    const rng = new Rng(deriveSeed(this.ctx.seed, 0x6e6365, batch.step));
    const n = batch.indices.length;
    const noise = Int32Array.from({ length: n * this.m }, () => rng.int(0, this.bank.size - 1));
    this.positives = this.bank.gather(batch.indices) as tf.Tensor2D; // [N, D]
    this.negatives = this.bank.gather(noise, [n, this.m]) as tf.Tensor3D; // [N, m, D]
  }

  override computeLoss(batch: TrainBatch): tf.Scalar {
    const f = this.projectViews(batch); // V × [N, D]
    const n = this.ctx.datasetSize;
    if (this.logZ === undefined) {
      const estimate = estimateLogZ(f[0], this.positives!, this.negatives!, n, this.cfg.temperature);
      this.logZ = estimate.dataSync()[0];
      estimate.dispose();
    }
    const losses = f.map((fv) => memoryBankNce(fv, this.positives!, this.negatives!, n, this.logZ!, this.cfg.temperature));
    this.features = tf.keep(l2Normalize(tf.addN(f).div(f.length)) as tf.Tensor2D); // mean over views, for the bank
    return tf.addN(losses).div(losses.length) as tf.Scalar;
  }

  /** Training only: v_i ← normalize(m v_i + (1 − m) f_i). */
  override afterStep(batch: TrainBatch): void {
    if (this.features) this.bank.update(batch.indices, this.features.dataSync() as Float32Array, this.cfg.bankMomentum);
    this.release();
  }

  /** The bank as a tensor for the last checkpoint; owned here (replaced on the next call, freed in dispose). */
  private bankTensor?: tf.Tensor2D;

  override getState(): MethodState {
    this.bankTensor?.dispose();
    this.bankTensor = this.bank.toTensor();
    return { tensors: { 'membank/bank': this.bankTensor }, json: { logZ: this.logZ ?? null } };
  }

  override setState(state: MethodState): void {
    const t = state.tensors['membank/bank'];
    if (!t) throw new Error('checkpoint lacks the memory bank');
    this.bank.load(t);
    const { logZ, z } = state.json;
    // Checkpoints written before log Z was kept store Z itself.
    this.logZ = typeof logZ === 'number' ? logZ : typeof z === 'number' ? Math.log(z) : undefined;
  }

  private release(): void {
    this.positives?.dispose();
    this.negatives?.dispose();
    this.features?.dispose();
    this.positives = this.negatives = this.features = undefined;
  }

  override dispose(): void {
    this.release();
    this.bankTensor?.dispose();
    super.dispose();
  }
}
