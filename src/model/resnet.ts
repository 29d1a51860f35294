/**
 * ResNet encoders (He et al. 2016, arXiv:1512.03385) built with tfjs layers.
 *
 * Two stems: 'small' (one 3x3 conv, no pooling, as in the CIFAR variants used by SimCLR for 32 px
 * inputs; suits 28-64 px images) and 'imagenet' (7x7 stride-2 conv + 3x3 max-pool, for 224 px).
 * Output: the globally average-pooled feature vector [N, widths[last] * expansion].
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormalization } from './batch-norm';

export type BlockKind = 'basic' | 'bottleneck';
export type StemKind = 'small' | 'imagenet';

export interface ResNetConfig {
  inputSize: number;
  channels: number;
  stem: StemKind;
  block: BlockKind;
  /** Residual blocks per stage; stage s > 0 halves the resolution. */
  stages: number[];
  /** Base width of each stage before the width multiplier. */
  widths: number[];
  widthMultiplier: number;
}

/** Named presets; 'resnet-mini' is the encoder of the shipped Fashion-MNIST model. */
export const RESNET_PRESETS: Record<string, Omit<ResNetConfig, 'inputSize' | 'channels'>> = {
  'resnet-mini': { stem: 'small', block: 'basic', stages: [1, 1, 1], widths: [32, 64, 128], widthMultiplier: 1 },
  resnet10: { stem: 'small', block: 'basic', stages: [1, 1, 1, 1], widths: [64, 128, 256, 512], widthMultiplier: 1 },
  resnet18: { stem: 'imagenet', block: 'basic', stages: [2, 2, 2, 2], widths: [64, 128, 256, 512], widthMultiplier: 1 },
  resnet50: { stem: 'imagenet', block: 'bottleneck', stages: [3, 4, 6, 3], widths: [64, 128, 256, 512], widthMultiplier: 1 },
};

export interface EncoderSpec {
  /** A RESNET_PRESETS name, e.g. 'resnet-mini'. */
  arch: string;
  /** Override the preset's stage widths (e.g. [8, 16, 32] for a tiny test encoder). */
  widths?: number[];
  widthMultiplier?: number;
  /** Override the preset's stem: 'small' (3x3, stride 1) suits 28-64 px inputs, 'imagenet' (7x7/2 + max pool) 224 px. */
  stem?: StemKind;
  /** Override the preset's residual blocks per stage (e.g. [2, 2, 2, 2] for ResNet-18's depth). */
  stages?: number[];
}

/** A preset with the spec's overrides, checked before any data or weights are loaded. */
export function resnetConfig(spec: EncoderSpec, size: number, channels: 1 | 3): ResNetConfig & { arch: string } {
  const preset = RESNET_PRESETS[spec.arch];
  if (!preset) throw new RangeError(`unknown encoder '${spec.arch}', expected one of ${Object.keys(RESNET_PRESETS).join(', ')}`);
  const cfg = { arch: spec.arch, ...preset, stem: spec.stem ?? preset.stem, stages: spec.stages ?? preset.stages, widths: spec.widths ?? preset.widths, widthMultiplier: spec.widthMultiplier ?? preset.widthMultiplier, inputSize: size, channels };
  validateResNetConfig(cfg);
  return cfg;
}

const EXPANSION: Record<BlockKind, number> = { basic: 1, bottleneck: 4 };

export function resnetFeatureDim(cfg: Pick<ResNetConfig, 'widths' | 'widthMultiplier' | 'block'>): number {
  return Math.round(cfg.widths[cfg.widths.length - 1] * cfg.widthMultiplier) * EXPANSION[cfg.block];
}

export function validateResNetConfig(cfg: ResNetConfig): void {
  if (!Number.isInteger(cfg.inputSize) || cfg.inputSize < 8) throw new RangeError(`inputSize must be an integer >= 8, got ${cfg.inputSize}`);
  if (cfg.channels !== 1 && cfg.channels !== 3) throw new RangeError(`channels must be 1 or 3, got ${cfg.channels}`);
  if (cfg.stages.length === 0 || cfg.stages.length !== cfg.widths.length) {
    throw new RangeError(`stages [${cfg.stages.join(', ')}] and widths [${cfg.widths.join(', ')}] must be non-empty and of equal length`);
  }
  for (const [name, xs] of [['stages', cfg.stages], ['widths', cfg.widths]] as const) {
    if (!xs.every((x) => Number.isInteger(x) && x > 0)) throw new RangeError(`${name} must be positive integers, got [${xs.join(', ')}]`);
  }
  if (!(cfg.widthMultiplier > 0)) throw new RangeError(`widthMultiplier must be > 0, got ${cfg.widthMultiplier}`);
}

class Namer {
  private counts = new Map<string, number>();
  next(kind: string): string {
    const n = (this.counts.get(kind) ?? 0) + 1;
    this.counts.set(kind, n);
    return `${kind}_${n}`;
  }
}

function convBn(x: tf.SymbolicTensor, filters: number, kernel: number, strides: number, names: Namer, relu: boolean): tf.SymbolicTensor {
  let y = tf.layers
    .conv2d({ filters, kernelSize: kernel, strides, padding: 'same', useBias: false, kernelInitializer: 'heNormal', name: names.next('conv') })
    .apply(x) as tf.SymbolicTensor;
  y = batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: names.next('bn') }).apply(y) as tf.SymbolicTensor;
  return relu ? (tf.layers.reLU({ name: names.next('relu') }).apply(y) as tf.SymbolicTensor) : y;
}

function block(x: tf.SymbolicTensor, kind: BlockKind, width: number, strides: number, names: Namer): tf.SymbolicTensor {
  const inChannels = x.shape[x.shape.length - 1] as number;
  const outChannels = width * EXPANSION[kind];
  let y: tf.SymbolicTensor;
  if (kind === 'basic') {
    y = convBn(x, width, 3, strides, names, true);
    y = convBn(y, width, 3, 1, names, false);
  } else {
    y = convBn(x, width, 1, 1, names, true);
    y = convBn(y, width, 3, strides, names, true);
    y = convBn(y, outChannels, 1, 1, names, false);
  }
  const shortcut = strides !== 1 || inChannels !== outChannels ? convBn(x, outChannels, 1, strides, names, false) : x;
  const sum = tf.layers.add({ name: names.next('add') }).apply([y, shortcut]) as tf.SymbolicTensor;
  return tf.layers.reLU({ name: names.next('relu') }).apply(sum) as tf.SymbolicTensor;
}

/** Builds the encoder: input [N, inputSize, inputSize, channels] → features [N, featureDim]. */
export function buildResNet(cfg: ResNetConfig, name = 'encoder'): tf.LayersModel {
  validateResNetConfig(cfg);
  const names = new Namer();
  const input = tf.input({ shape: [cfg.inputSize, cfg.inputSize, cfg.channels], name: 'image' });
  const stemWidth = Math.round(cfg.widths[0] * cfg.widthMultiplier);
  let x: tf.SymbolicTensor;
  if (cfg.stem === 'small') {
    x = convBn(input, stemWidth, 3, 1, names, true);
  } else {
    x = convBn(input, stemWidth, 7, 2, names, true);
    x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'stem_pool' }).apply(x) as tf.SymbolicTensor;
  }
  cfg.stages.forEach((count, s) => {
    const width = Math.round(cfg.widths[s] * cfg.widthMultiplier);
    for (let b = 0; b < count; b++) x = block(x, cfg.block, width, s > 0 && b === 0 ? 2 : 1, names);
  });
  const features = tf.layers.globalAveragePooling2d({ name: 'features' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: features, name });
}
