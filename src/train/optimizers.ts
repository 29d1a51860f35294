/**
 * Optimizers with explicit, checkpointable state: Adam(W), SGD with momentum, LARS.
 *
 * Written here rather than taken from tf.train so that (1) the learning rate can follow a schedule
 * every step, (2) weight decay can skip batch-norm and bias parameters (rank-1 variables), as
 * SimCLR's LARS does, and (3) the slots can be saved and restored by position for resume.
 * All updates run inside tf.tidy; slot tensors are kept and replaced (old one disposed) each step.
 */
import * as tf from '@tensorflow/tfjs';

export type OptimizerName = 'adam' | 'sgd' | 'lars';
export const OPTIMIZERS: readonly OptimizerName[] = ['adam', 'sgd', 'lars'];

export interface OptimizerConfig {
  name: OptimizerName;
  /** Weight decay (decoupled for Adam, L2 for SGD and LARS). Not applied to rank-1 variables. */
  weightDecay: number;
  /** Momentum for SGD and LARS; β1 for Adam. Default 0.9. */
  momentum: number;
  /** Adam β2. Default 0.999. */
  beta2: number;
  /** Adam ε. Default 1e-8. */
  epsilon: number;
  /** LARS trust coefficient η. Default 0.001. */
  trustCoefficient: number;
}

export const OPTIMIZER_DEFAULTS: Omit<OptimizerConfig, 'name'> = { weightDecay: 1e-6, momentum: 0.9, beta2: 0.999, epsilon: 1e-8, trustCoefficient: 0.001 };

/** Default base learning rate per optimizer for a batch size (SimCLR: LARS 0.3 · B/256). */
export function defaultLearningRate(name: OptimizerName, batchSize: number): number {
  if (name === 'adam') return 1e-3;
  if (name === 'sgd') return (0.06 * batchSize) / 256;
  return (0.3 * batchSize) / 256;
}

/** Whether weight decay (and LARS adaptation) applies: not to biases and batch-norm parameters. */
export const decays = (v: tf.Variable): boolean => v.rank > 1;

export abstract class Optimizer {
  protected slots: tf.Tensor[][] = [];
  /** Number of steps applied so far. */
  iterations = 0;

  constructor(readonly cfg: OptimizerConfig) {
    if (!(cfg.weightDecay >= 0)) throw new RangeError(`weight decay must be >= 0, got ${cfg.weightDecay}`);
    if (!(cfg.momentum >= 0 && cfg.momentum < 1)) throw new RangeError(`momentum must be in [0, 1), got ${cfg.momentum}`);
  }

  /** Number of slot tensors per variable. */
  protected abstract readonly slotCount: number;

  /** New value of one variable. Runs inside tidy; `slots` are replaced by the returned ones. */
  protected abstract update(v: tf.Variable, g: tf.Tensor, slots: tf.Tensor[], lr: number): { value: tf.Tensor; slots: tf.Tensor[] };

  /**
   * One step: vars[i] -= f(grads[vars[i].name]). Variables without a gradient are left alone.
   * Disposes the gradients.
   */
  apply(vars: tf.Variable[], grads: tf.NamedTensorMap, lr: number): void {
    if (!(lr >= 0) || !Number.isFinite(lr)) throw new RangeError(`learning rate must be a finite number >= 0, got ${lr}`);
    this.iterations++;
    vars.forEach((v, i) => {
      const g = grads[v.name];
      if (!g) return;
      if (!this.slots[i]) this.slots[i] = Array.from({ length: this.slotCount }, () => tf.keep(tf.zerosLike(v)));
      const old = this.slots[i];
      const next = tf.tidy(() => {
        const r = this.update(v, g, old, lr);
        v.assign(r.value);
        return r.slots;
      });
      old.forEach((t) => t.dispose());
      this.slots[i] = next;
    });
    Object.values(grads).forEach((g) => g.dispose());
  }

  /** Slot tensors keyed `${variableIndex}/${slot}` and the JSON part of the state. */
  getState(): { tensors: tf.NamedTensorMap; json: { name: OptimizerName; iterations: number } } {
    const tensors: tf.NamedTensorMap = {};
    this.slots.forEach((s, i) => s?.forEach((t, k) => (tensors[`opt/${i}/${k}`] = t)));
    return { tensors, json: { name: this.cfg.name, iterations: this.iterations } };
  }

  setState(vars: tf.Variable[], tensors: tf.NamedTensorMap, json: { name: string; iterations: number }): void {
    if (json.name !== this.cfg.name) throw new Error(`checkpoint was written by optimizer '${json.name}', this run uses '${this.cfg.name}'`);
    this.dispose();
    this.iterations = json.iterations;
    vars.forEach((v, i) => {
      if (!tensors[`opt/${i}/0`]) return;
      this.slots[i] = Array.from({ length: this.slotCount }, (_, k) => {
        const t = tensors[`opt/${i}/${k}`];
        if (!t || t.shape.join() !== v.shape.join()) throw new Error(`optimizer slot ${i}/${k} does not match variable ${v.name} [${v.shape.join(', ')}]`);
        return tf.keep(t.clone());
      });
    });
  }

  dispose(): void {
    this.slots.forEach((s) => s?.forEach((t) => t.dispose()));
    this.slots = [];
  }
}

/** SGD with (heavy-ball) momentum and L2 weight decay, as torch.optim.SGD. */
export class SgdMomentum extends Optimizer {
  protected readonly slotCount = 1;

  protected update(v: tf.Variable, g: tf.Tensor, [buf]: tf.Tensor[], lr: number) {
    const grad = decays(v) && this.cfg.weightDecay > 0 ? g.add(v.mul(this.cfg.weightDecay)) : g;
    const next = buf.mul(this.cfg.momentum).add(grad); // b ← μ b + g
    return { value: v.sub(next.mul(lr)), slots: [next] };
  }
}

/** Adam with decoupled weight decay (AdamW, Loshchilov & Hutter 2019, arXiv:1711.05101). */
export class AdamW extends Optimizer {
  protected readonly slotCount = 2;

  protected update(v: tf.Variable, g: tf.Tensor, [m, s]: tf.Tensor[], lr: number) {
    const { momentum: b1, beta2: b2, epsilon } = this.cfg;
    const t = this.iterations;
    const m2 = m.mul(b1).add(g.mul(1 - b1)); // first moment
    const s2 = s.mul(b2).add(g.square().mul(1 - b2)); // second moment
    const stepSize = (lr * Math.sqrt(1 - b2 ** t)) / (1 - b1 ** t);
    let value = v.sub(m2.div(s2.sqrt().add(epsilon)).mul(stepSize));
    if (decays(v) && this.cfg.weightDecay > 0) value = value.sub(v.mul(lr * this.cfg.weightDecay));
    return { value, slots: [m2, s2] };
  }
}

/**
 * LARS (You, Gitman, Ginsburg 2017, arXiv:1708.03888, algorithm 1), as used by SimCLR:
 * g ← g + λw; local lr = η‖w‖ / ‖g‖; v ← μv + lr·local·g; w ← w − v. Biases and batch-norm
 * parameters get neither weight decay nor adaptation.
 */
export class Lars extends Optimizer {
  protected readonly slotCount = 1;

  protected update(v: tf.Variable, g: tf.Tensor, [buf]: tf.Tensor[], lr: number) {
    let grad = g;
    let scaled = tf.scalar(lr);
    if (decays(v)) {
      grad = this.cfg.weightDecay > 0 ? g.add(v.mul(this.cfg.weightDecay)) : g;
      const wNorm = v.norm();
      const gNorm = grad.norm();
      const trust = tf.where(wNorm.greater(0).logicalAnd(gNorm.greater(0)), wNorm.mul(this.cfg.trustCoefficient).div(gNorm), tf.scalar(1));
      scaled = trust.mul(lr);
    }
    const next = buf.mul(this.cfg.momentum).add(grad.mul(scaled));
    return { value: v.sub(next), slots: [next] };
  }
}

export function createOptimizer(name: OptimizerName, overrides: Partial<Omit<OptimizerConfig, 'name'>> = {}): Optimizer {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const cfg: OptimizerConfig = { name, ...OPTIMIZER_DEFAULTS, ...defined };
  if (name === 'adam') return new AdamW(cfg);
  if (name === 'sgd') return new SgdMomentum(cfg);
  if (name === 'lars') return new Lars(cfg);
  throw new RangeError(`unknown optimizer '${name}', expected one of ${OPTIMIZERS.join(', ')}`);
}
