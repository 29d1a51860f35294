/**
 * MoCo v2 (He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation Learning",
 * https://arxiv.org/abs/1911.05722; Chen et al. 2020, "Improved Baselines with Momentum Contrastive
 * Learning", https://arxiv.org/abs/2003.04297): queries from the network, keys from a momentum copy
 * (θ_k ← m θ_k + (1 − m) θ_q, eq. 2), InfoNCE against a FIFO queue of past keys (eq. 1), MLP head.
 * Symmetrised over the two views as in solo-learn's mocov2plus.
 *
 * Extra settings: temperature (default 0.2), momentum m (0.99), queueSize K (4096), symmetric (true),
 * shuffleGroups (4: keys in shuffled sub-batches, see shuffledKeys).
 * State (checkpointed): the key network's weights and the queue. Both change only in afterStep,
 * i.e. only in training.
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed, Rng } from '../augment/rng';
import { l2Normalize } from '../losses/common';
import { infoNce } from '../losses/infonce';
import { buildTwoOutputModel, MoCoProjectionHead, ProjectionHead } from '../model/heads';
import { ContrastiveMethod, MethodConfig, MethodContext, MethodState, num, RawConfig, requireViews, TrainBatch } from './method';
import { withSeededRandom } from './seeded-init';

export interface MoCoConfig extends MethodConfig {
  /** EMA coefficient of the key encoder. */
  momentum: number;
  /** Number of negative keys kept. */
  queueSize: number;
  /** Also predict view 1's key from view 2's query. */
  symmetric: boolean;
  /** Shuffled sub-batches the keys are computed in, each with its own batch-norm statistics (1: off). */
  shuffleGroups: number;
}

/**
 * Splits a permutation of the batch into `groups` sub-batches of near-equal size (at least two
 * images each, so batch norm has a variance to use).
 */
export function shuffleGroupsOf(permutation: Int32Array, groups: number): Int32Array[] {
  const n = permutation.length;
  const g = Math.max(1, Math.min(groups, Math.floor(n / 2)));
  return Array.from({ length: g }, (_, i) => permutation.slice(Math.floor((i * n) / g), Math.floor(((i + 1) * n) / g)));
}

/**
 * Unit keys of `x` from the key network's projection, in training mode, computed in shuffled
 * sub-batches: each image's key is normalised with the batch-norm statistics of its sub-batch,
 * not of the whole batch its query was normalised with. MoCo §3.3 ("Shuffling BN") shuffles keys
 * across GPUs for this; on one device the sub-batches stand in for the GPUs. Without it, a query and
 * its positive key share batch statistics, which leak which sample is the positive: the model then
 * "cheats" the pretext task (the paper: lower loss, worse representation).
 */
export function shuffledKeys(keyNetwork: tf.LayersModel, x: tf.Tensor4D, groups: Int32Array[]): tf.Tensor2D {
  return tf.tidy(() => {
    const parts = groups.map((g) => (keyNetwork.apply(tf.gather(x, Array.from(g)), { training: true }) as tf.Tensor2D[])[1]);
    // parts hold the images in the order the groups list them; put them back in batch order.
    const order = groups.flatMap((g) => Array.from(g));
    const inverse = new Int32Array(order.length);
    order.forEach((image, row) => (inverse[image] = row));
    return l2Normalize(tf.gather(tf.concat(parts), Array.from(inverse)));
  });
}

export class MoCo extends ContrastiveMethod<MoCoConfig> {
  static override readonly methodName: string = 'moco';

  static override configure(raw: RawConfig): MoCoConfig {
    const base = requireViews(super.configure({ temperature: 0.2, ...raw }), 2, 'moco');
    const cfg: MoCoConfig = {
      ...base,
      momentum: num(raw, 'momentum', 0.99),
      queueSize: num(raw, 'queueSize', 4096),
      symmetric: raw.symmetric !== false,
      shuffleGroups: num(raw, 'shuffleGroups', 4),
    };
    if (!(cfg.momentum >= 0 && cfg.momentum < 1)) throw new RangeError(`moco momentum must be in [0, 1), got ${cfg.momentum}`);
    if (!Number.isInteger(cfg.queueSize) || cfg.queueSize < 1) throw new RangeError(`queueSize must be a positive integer, got ${cfg.queueSize}`);
    if (!Number.isInteger(cfg.shuffleGroups) || cfg.shuffleGroups < 1) throw new RangeError(`shuffleGroups must be a positive integer, got ${cfg.shuffleGroups}`);
    return cfg;
  }

  /** Momentum copy of `network` (encoder + head), never touched by the optimizer. */
  readonly keyNetwork: tf.LayersModel;
  /** [K, P] unit rows, newest first. */
  private queue: tf.Tensor2D;
  /** Keys of the current batch, one [N, P] per view (set in beforeStep, used until afterStep). */
  private keys: tf.Tensor2D[] = [];

  constructor(encoder: tf.LayersModel, cfg: MoCoConfig, ctx: MethodContext) {
    super(encoder, cfg, ctx);
    this.keyNetwork = withSeededRandom(ctx.seed, () => buildTwoOutputModel(ctx.buildEncoder(), this.buildHead(this.featureDim), 'key_network'));
    this.keyNetwork.setWeights(this.network.getWeights());
    const rng = new Rng(ctx.seed ^ 0x6d6f636f);
    const init = Float32Array.from({ length: cfg.queueSize * cfg.projectionDim }, () => rng.uniform(-1, 1));
    this.queue = tf.tidy(() => l2Normalize(tf.tensor2d(init, [cfg.queueSize, cfg.projectionDim])));
  }

  protected override buildHead(featureDim: number): ProjectionHead {
    return new MoCoProjectionHead(featureDim, this.cfg.projectionHiddenDim, this.cfg.projectionDim);
  }

  /**
   * Keys k_v = normalize(key_network(view_v)) in shuffled sub-batches (shuffledKeys): no gradient
   * (computed outside the tape). Without the symmetric loss only view 2 gives keys, as in MoCo v2: N
   * keys enter the queue per step, not 2N. The shuffle is drawn from the seed and the step, so a
   * resumed run draws the same one.
   */
  override beforeStep(batch: TrainBatch): void {
    this.disposeKeys();
    const views = this.cfg.symmetric ? batch.views : batch.views.slice(1, 2);
    this.keys = views.map((v, i) => {
      const permutation = new Rng(deriveSeed(this.ctx.seed, 0x6d6f636f, batch.step, i)).permutation(v.shape[0]);
      return shuffledKeys(this.keyNetwork, v, shuffleGroupsOf(permutation, this.cfg.shuffleGroups));
    });
  }

  override computeLoss(batch: TrainBatch): tf.Scalar {
    const T = this.cfg.temperature;
    // Queries of view 1 only: a forward pass of view 2 would be wasted and would move the BN statistics.
    if (!this.cfg.symmetric) return infoNce(this.forward(batch.views[0]).z, this.keys[0], this.queue, T);
    const q = this.projectViews(batch); // V × [N, P]
    const losses = q.map((qv, v) => infoNce(qv, this.keys[(v + 1) % q.length], this.queue, T));
    return tf.addN(losses).div(losses.length) as tf.Scalar;
  }

  /** EMA of the key network, then enqueue this batch's keys (dropping the oldest). */
  override afterStep(): void {
    const m = this.cfg.momentum;
    tf.tidy(() => {
      const qw = this.network.trainableWeights;
      this.keyNetwork.trainableWeights.forEach((kw, i) => {
        const k = kw.read() as tf.Variable;
        k.assign(k.mul(m).add(qw[i].read().mul(1 - m)));
      });
    });
    const old = this.queue;
    this.queue = tf.tidy(() => tf.concat([...this.keys, old]).slice([0, 0], [this.cfg.queueSize, this.cfg.projectionDim]) as tf.Tensor2D);
    old.dispose();
    this.disposeKeys();
  }

  override getState(): MethodState {
    const tensors: tf.NamedTensorMap = { 'moco/queue': this.queue };
    this.keyNetwork.getWeights().forEach((w, i) => (tensors[`moco/key/${i}`] = w));
    return { tensors, json: { queueSize: this.cfg.queueSize } };
  }

  override initWeights(source: tf.LayersModel): 'network' | 'encoder' {
    const loaded = super.initWeights(source);
    this.keyNetwork.setWeights(this.network.getWeights()); // keys start from the same weights as queries
    return loaded;
  }

  override setState(state: MethodState): void {
    const q = state.tensors['moco/queue'];
    if (!q || q.shape[0] !== this.cfg.queueSize || q.shape[1] !== this.cfg.projectionDim) throw new Error(`checkpoint has no moco queue of [${this.cfg.queueSize}, ${this.cfg.projectionDim}]`);
    this.queue.dispose();
    this.queue = tf.keep(q.clone()) as tf.Tensor2D;
    const n = this.keyNetwork.getWeights().length;
    this.keyNetwork.setWeights(Array.from({ length: n }, (_, i) => {
      const w = state.tensors[`moco/key/${i}`];
      if (!w) throw new Error(`checkpoint lacks key network weight ${i}`);
      return w;
    }));
  }

  private disposeKeys(): void {
    this.keys.forEach((k) => k.dispose());
    this.keys = [];
  }

  override dispose(): void {
    this.disposeKeys();
    this.queue.dispose();
    this.keyNetwork.dispose();
    super.dispose();
  }
}
