/**
 * The base of every training method (solo-learn's BaseMethod): it owns the network (encoder +
 * projection head, two outputs), the list of trainable variables, the forward pass, method state
 * for checkpoints, and the hooks the shared loop (trainer.ts) calls each step:
 *
 *   beforeStep(batch)   outside the gradient tape (e.g. MoCo computes its keys here)
 *   computeLoss(batch)  inside the tape; returns the scalar loss; by default
 *                       lossFromProjections(projections of the views, batch)  ← every method, one of the two
 *   afterStep(batch)    after the optimizer update (EMA, queue, memory bank); training only
 *
 * Configuration defaults and checks live in one static hook, `configure`, which each subclass
 * extends and chains (solo-learn's add_and_assert_specific_cfg). Subclasses override only what
 * differs: the head (`buildHead`), extra variables, the loss, the after-step update and state.
 */
import * as tf from '@tensorflow/tfjs';
import { buildTwoOutputModel, ProjectionHead, SimCLRProjectionHead } from '../model/heads';

export interface MethodConfig {
  /** Softmax temperature of the loss. */
  temperature: number;
  /** Hidden width of the projection head. */
  projectionHiddenDim: number;
  /** Output width of the projection head. */
  projectionDim: number;
  /** Views per image. */
  views: number;
}

export interface MethodContext {
  /** Builds a fresh encoder of the configured architecture (for momentum encoders). */
  buildEncoder: () => tf.LayersModel;
  /** Images in the training set (memory-bank size). */
  datasetSize: number;
  /** Seed for the method's own random choices. */
  seed: number;
}

export interface TrainBatch {
  /** One normalised model input [N, S, S, C] per view. */
  views: tf.Tensor4D[];
  /** Dataset index of each image: [N]. */
  indices: Int32Array;
  /** Class of each image when the dataset has labels: [N]. */
  labels?: Int32Array;
  epoch: number;
  /** Global step number (0-based, counts across epochs). */
  step: number;
}

export interface MethodState {
  tensors: tf.NamedTensorMap;
  json: Record<string, unknown>;
}

export type RawConfig = Record<string, unknown>;

/** Throws unless cfg.views >= min (methods that contrast views with each other need 2). */
export function requireViews<C extends MethodConfig>(cfg: C, min: number, method: string): C {
  if (cfg.views < min) throw new RangeError(`${method} needs at least ${min} views, got ${cfg.views}`);
  return cfg;
}

/** Reads a number from a raw config with a default; RangeError quoting a non-number. */
export function num(raw: RawConfig, key: string, fallback: number): number {
  const v = raw[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RangeError(`${key} must be a finite number, got ${String(v)}`);
  return v;
}

export abstract class ContrastiveMethod<C extends MethodConfig = MethodConfig> {
  /** Name used by the CLI and recorded in the manifest. */
  static readonly methodName: string = 'base';
  /** Whether the method needs labels (SupCon). */
  static readonly supervised: boolean = false;

  /** Defaults and checks shared by every method; subclasses call super.configure(raw) and add theirs. */
  static configure(raw: RawConfig): MethodConfig {
    const cfg: MethodConfig = {
      temperature: num(raw, 'temperature', 0.5),
      projectionHiddenDim: num(raw, 'projectionHiddenDim', 512),
      projectionDim: num(raw, 'projectionDim', 128),
      views: num(raw, 'views', 2),
    };
    if (!(cfg.temperature > 0)) throw new RangeError(`temperature must be > 0, got ${cfg.temperature}`);
    if (!Number.isInteger(cfg.views) || cfg.views < 1) throw new RangeError(`views must be an integer >= 1, got ${cfg.views}`);
    for (const k of ['projectionHiddenDim', 'projectionDim'] as const) {
      if (!Number.isInteger(cfg[k]) || cfg[k] < 1) throw new RangeError(`${k} must be a positive integer, got ${cfg[k]}`);
    }
    return cfg;
  }

  readonly head: ProjectionHead;
  /** image → [features [N, F], projection [N, P]]; this is what gets saved. */
  readonly network: tf.LayersModel;
  readonly featureDim: number;

  constructor(
    readonly encoder: tf.LayersModel,
    readonly cfg: C,
    protected readonly ctx: MethodContext,
  ) {
    const out = encoder.outputs[0].shape;
    this.featureDim = out[out.length - 1] as number;
    this.head = this.buildHead(this.featureDim);
    this.network = buildTwoOutputModel(encoder, this.head);
  }

  get name(): string {
    return (this.constructor as typeof ContrastiveMethod).methodName;
  }

  /** The projection head; default SimCLR's (Linear → BN → ReLU → Linear). */
  protected buildHead(featureDim: number): ProjectionHead {
    return new SimCLRProjectionHead(featureDim, this.cfg.projectionHiddenDim, this.cfg.projectionDim);
  }

  /** Variables beyond the network's (e.g. SwAV prototypes). */
  protected extraVariables(): tf.Variable[] {
    return [];
  }

  /** Everything the optimizer updates, in a fixed order (optimizer slots are saved by position). */
  trainableVariables(): tf.Variable[] {
    return [...this.network.trainableWeights.map((w) => w.read() as tf.Variable), ...this.extraVariables()];
  }

  /** Forward in training mode (batch-norm uses batch statistics and updates its averages). */
  forward(x: tf.Tensor4D, training = true): { h: tf.Tensor2D; z: tf.Tensor2D } {
    const [h, z] = this.network.apply(x, { training }) as tf.Tensor2D[];
    return { h, z };
  }

  /** Projections of every view: V tensors [N, P]. */
  protected projectViews(batch: TrainBatch): tf.Tensor2D[] {
    return batch.views.map((v) => this.forward(v).z);
  }

  /**
   * Starts from another model's weights (fine-tuning, `--init-from`), layer by layer by name: every
   * encoder layer must find its match, the head is taken too when all its layers match (same method
   * family), else it keeps its fresh weights. Returns what was loaded.
   */
  initWeights(source: tf.LayersModel): 'network' | 'encoder' {
    const byName = new Map(source.layers.map((l) => [l.name, l]));
    const match = (layers: tf.layers.Layer[]): Array<[tf.layers.Layer, tf.Tensor[]]> | undefined => {
      const pairs: Array<[tf.layers.Layer, tf.Tensor[]]> = [];
      for (const layer of layers.filter((l) => l.weights.length > 0)) {
        const weights = byName.get(layer.name)?.getWeights();
        if (!weights || weights.length !== layer.weights.length || weights.some((w, i) => w.shape.join() !== layer.weights[i].shape.join())) return undefined;
        pairs.push([layer, weights]);
      }
      return pairs;
    };
    const encoderLayers = new Set(this.encoder.layers);
    const encoder = match(this.encoder.layers);
    if (!encoder) throw new Error(`the initial weights do not fit this encoder (check --encoder, --widths and --channels against the source model)`);
    const head = match(this.network.layers.filter((l) => !encoderLayers.has(l)));
    for (const [layer, weights] of [...encoder, ...(head ?? [])]) layer.setWeights(weights);
    return head ? 'network' : 'encoder';
  }

  beforeStep(_batch: TrainBatch): void {}

  /**
   * The step's loss, on the gradient tape. By default the loss of the views' projections
   * (`lossFromProjections`); methods with state of their own (MoCo's keys, the memory bank, SwAV's
   * codes) override this instead.
   */
  computeLoss(batch: TrainBatch): tf.Scalar {
    if (!this.lossFromProjections) throw new Error(`${this.name} defines neither computeLoss nor lossFromProjections`);
    return this.lossFromProjections(this.projectViews(batch), batch);
  }

  /**
   * The loss from the views' projections alone (V tensors [N, P], view order), for methods whose
   * loss reads nothing else of the network (SimCLR, SupCon): they can also train with gradient
   * caching (grad-cache.ts, `--grad-cache-chunk`). Methods with state of their own leave it undefined.
   */
  lossFromProjections?(zs: tf.Tensor2D[], batch: TrainBatch): tf.Scalar;

  afterStep(_batch: TrainBatch): void {}

  /** Tensors and JSON to checkpoint besides the network and the optimizer. */
  getState(): MethodState {
    return { tensors: {}, json: {} };
  }

  setState(_state: MethodState): void {}

  /** Hyper-parameters for the manifest. */
  describe(): Record<string, unknown> {
    return { method: this.name, ...(this.cfg as MethodConfig), head: this.head.describe() };
  }

  dispose(): void {
    this.network.dispose();
  }
}

/** A method class as the registry holds it. */
export interface MethodClass {
  readonly methodName: string;
  readonly supervised: boolean;
  configure(raw: RawConfig): MethodConfig;
  new (encoder: tf.LayersModel, cfg: never, ctx: MethodContext): ContrastiveMethod;
}
