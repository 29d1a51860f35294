/**
 * Projection heads, built from block specs (lightly's ProjectionHead), and the two-output network
 * we train and serve: image → [encoder features, projection].
 *
 * A head is a list of blocks, each `Dense(in → out) [→ BatchNorm] [→ activation]`. Each paper's
 * head is a small subclass whose defaults match the paper. The served embedding is chosen by the
 * manifest (`outputs: ['encoder', 'projection']`, `embedding.output`).
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormalization } from './batch-norm';

export type HeadActivation = 'relu' | 'linear';

export interface HeadBlock {
  in: number;
  out: number;
  /** Batch normalisation after the linear layer. */
  batchNorm: boolean;
  /** Activation after the (normalised) linear layer; 'linear' means none. */
  activation: HeadActivation;
  /** Bias of the linear layer; default: only without batch norm (which has its own shift). */
  bias?: boolean;
}

/** Generic MLP head. Layers are created once; `apply` chains them on a symbolic or real tensor. */
export class ProjectionHead {
  readonly layers: tf.layers.Layer[] = [];
  readonly inputDim: number;
  readonly outputDim: number;

  constructor(
    readonly blocks: HeadBlock[],
    readonly name = 'head',
  ) {
    if (blocks.length === 0) throw new RangeError('a projection head needs at least one block');
    blocks.forEach((b, i) => {
      if (!(Number.isInteger(b.in) && b.in > 0 && Number.isInteger(b.out) && b.out > 0)) {
        throw new RangeError(`head block ${i}: in and out must be positive integers, got ${b.in} → ${b.out}`);
      }
      if (i > 0 && b.in !== blocks[i - 1].out) throw new RangeError(`head block ${i} takes ${b.in} inputs but block ${i - 1} gives ${blocks[i - 1].out}`);
      this.layers.push(tf.layers.dense({ units: b.out, useBias: b.bias ?? !b.batchNorm, kernelInitializer: 'glorotUniform', name: `${name}_dense_${i + 1}` }));
      if (b.batchNorm) this.layers.push(batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: `${name}_bn_${i + 1}` }));
      if (b.activation === 'relu') this.layers.push(tf.layers.reLU({ name: `${name}_relu_${i + 1}` }));
    });
    this.inputDim = blocks[0].in;
    this.outputDim = blocks[blocks.length - 1].out;
  }

  /** features [N, in] → projection [N, out]. */
  apply(x: tf.SymbolicTensor): tf.SymbolicTensor {
    return this.layers.reduce((h, layer) => layer.apply(h) as tf.SymbolicTensor, x);
  }

  /** Hyper-parameters for the manifest. */
  describe(): { name: string; blocks: HeadBlock[] } {
    return { name: this.name, blocks: this.blocks };
  }
}

/**
 * SimCLR's projection head g(·): "a MLP with one hidden layer to obtain z_i = g(h_i) =
 * W(2) σ(W(1) h_i) where σ is a ReLU non-linearity" (Chen et al. 2020, arXiv:2002.05709, §2.1).
 * As in SimCLR v1 code and lightly: Linear → BN → ReLU → Linear, output 128.
 */
export class SimCLRProjectionHead extends ProjectionHead {
  constructor(inputDim = 2048, hiddenDim = 2048, outputDim = 128, name = 'head') {
    super(
      [
        { in: inputDim, out: hiddenDim, batchNorm: true, activation: 'relu' },
        { in: hiddenDim, out: outputDim, batchNorm: false, activation: 'linear' },
      ],
      name,
    );
  }
}

/**
 * MoCo v2's head: "we replace the fc head in MoCo with a 2-layer MLP head (hidden layer 2048-d,
 * with ReLU)" (Chen et al. 2020, arXiv:2003.04297, §2). No batch norm.
 */
export class MoCoProjectionHead extends ProjectionHead {
  constructor(inputDim = 2048, hiddenDim = 2048, outputDim = 128, name = 'head') {
    super(
      [
        { in: inputDim, out: hiddenDim, batchNorm: false, activation: 'relu' },
        { in: hiddenDim, out: outputDim, batchNorm: false, activation: 'linear' },
      ],
      name,
    );
  }
}

/**
 * SwAV's projection head: "a projection head ... 2-layer MLP ... 2048 hidden, 128 output" with batch
 * norm (Caron et al. 2020, arXiv:2006.09882, appendix A); the prototypes live in the method.
 */
export class SwAVProjectionHead extends SimCLRProjectionHead {}

/**
 * The network trained and saved: input image → [encoder features [N, F], projection [N, P]]. It
 * reuses the encoder's layers (no copy), so training it trains the encoder.
 */
export function buildTwoOutputModel(encoder: tf.LayersModel, head: ProjectionHead, name = 'likeness'): tf.LayersModel {
  if (encoder.outputs.length !== 1) throw new RangeError(`the encoder must have one output, got ${encoder.outputs.length}`);
  const features = encoder.outputs[0];
  const dim = features.shape[features.shape.length - 1];
  if (dim !== head.inputDim) throw new RangeError(`head expects ${head.inputDim} inputs but the encoder gives ${dim}`);
  return tf.model({ inputs: encoder.inputs, outputs: [features, head.apply(features)], name });
}

/** Output order of `buildTwoOutputModel`, as the manifest's `outputs` lists them. */
export const TWO_OUTPUTS = ['encoder', 'projection'] as const;
