/**
 * SimCLR-style view transform and the multi-view wrapper.
 *
 * The defaults reproduce SimCLR's ImageNet augmentation (Chen et al. 2020, arXiv:2002.05709,
 * appendix A; lightly's SimCLRTransform): random resized crop (0.08-1, 3/4-4/3), horizontal flip
 * (0.5), colour jitter (0.8, 0.8, 0.8, 0.2) at p = 0.8, random grayscale (p = 0.2), Gaussian blur
 * (p = 0.5, sigma 0.1-2, kernel 10% of the side), no solarization, no random erasing. For small
 * greyscale images such as Fashion-MNIST, the colour ops reduce to brightness and contrast and blur is
 * usually switched off (SimCLR's CIFAR setting), see SMALL_IMAGE_AUGMENT.
 *
 * Usage:
 *   const views = multiView(x01, { views: 2 }, seed);   // x01: [N, H, W, C] in [0, 1]
 *   const inputs = views.map((v) => toModelInput(v, manifest.input));  // normalised, as serving
 */
import * as tf from '@tensorflow/tfjs';
import { pixelsToTensor } from '../images/preprocess';
import type { InputSpec } from '../model/manifest';
import { colorJitter, randomErasing, randomGaussianBlur, randomGrayscale, randomResizedCrop, randomSolarize } from './ops';
import { deriveSeed, Rng } from './rng';

export interface ViewAugmentConfig {
  /** Output side of every view in pixels; default: the input side. */
  size?: number;
  /** Random resized crop area fraction range. Default [0.08, 1]. */
  cropScale: [number, number];
  /** Random resized crop aspect ratio range (w/h). Default [3/4, 4/3]. */
  cropRatio: [number, number];
  /** Horizontal flip probability. Default 0.5. */
  hflipProb: number;
  /** Probability of colour jitter per image. Default 0.8. */
  jitterProb: number;
  /** Colour distortion strength s multiplying the four jitter amounts. Default 1. */
  jitterStrength: number;
  /** Jitter amounts (before strength). Defaults 0.8, 0.8, 0.8, 0.2. */
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  /** Random grayscale probability (no-op on 1-channel images). Default 0.2. */
  grayscaleProb: number;
  /** Gaussian blur probability. Default 0.5. */
  blurProb: number;
  /** Gaussian blur sigma range in pixels. Default [0.1, 2]. */
  blurSigma: [number, number];
  /** Blur kernel side as a fraction of the image side. Default 0.1. */
  blurKernelFraction: number;
  /** Solarization probability (BYOL uses 0.2 on its second view). Default 0. */
  solarizeProb: number;
  /** Solarization threshold in [0, 1]. Default 0.5. */
  solarizeThreshold: number;
  /** Random erasing probability (Zhong et al. 2020). Default 0 (off, as in SimCLR). */
  eraseProb: number;
  /** Random erasing area fraction range. Default [0.02, 0.33]. */
  eraseScale: [number, number];
}

export const DEFAULT_AUGMENT: Readonly<ViewAugmentConfig> = Object.freeze({
  cropScale: [0.08, 1] as [number, number],
  cropRatio: [3 / 4, 4 / 3] as [number, number],
  hflipProb: 0.5,
  jitterProb: 0.8,
  jitterStrength: 1,
  brightness: 0.8,
  contrast: 0.8,
  saturation: 0.8,
  hue: 0.2,
  grayscaleProb: 0.2,
  blurProb: 0.5,
  blurSigma: [0.1, 2] as [number, number],
  blurKernelFraction: 0.1,
  solarizeProb: 0,
  solarizeThreshold: 0.5,
  eraseProb: 0,
  eraseScale: [0.02, 0.33] as [number, number],
});

/** Settings for 28-32 px inputs (SimCLR's CIFAR recipe: no blur, s = 0.5; larger minimum crop). */
export const SMALL_IMAGE_AUGMENT: Readonly<Partial<ViewAugmentConfig>> = Object.freeze({
  cropScale: [0.2, 1] as [number, number],
  jitterStrength: 0.5,
  blurProb: 0,
});

export function augmentConfig(overrides: Partial<ViewAugmentConfig> = {}): ViewAugmentConfig {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return { ...DEFAULT_AUGMENT, ...defined } as ViewAugmentConfig;
}

/**
 * One augmented view of every image: crop → flip → colour jitter → grayscale → blur → solarize → erase.
 * x: [N, H, W, C] in [0, 1] → [N, size, size, C] in [0, 1]. Same rng state → same view.
 */
export function augmentView(x: tf.Tensor4D, cfg: ViewAugmentConfig, rng: Rng): tf.Tensor4D {
  const steps: Array<(t: tf.Tensor4D) => tf.Tensor4D> = [
    // Crop, then horizontal flip folded into the crop box (no extra pass over the pixels).
    (t) => randomResizedCrop(t, rng, { size: cfg.size, scale: cfg.cropScale, ratio: cfg.cropRatio, flipProb: cfg.hflipProb }),
    (t) =>
      colorJitter(t, rng, {
        p: cfg.jitterProb,
        strength: cfg.jitterStrength,
        brightness: cfg.brightness,
        contrast: cfg.contrast,
        saturation: cfg.saturation,
        hue: cfg.hue,
      }),
    (t) => randomGrayscale(t, rng, cfg.grayscaleProb),
    (t) => randomGaussianBlur(t, rng, { p: cfg.blurProb, sigma: cfg.blurSigma, kernelFraction: cfg.blurKernelFraction }),
    (t) => randomSolarize(t, rng, cfg.solarizeProb, cfg.solarizeThreshold),
    (t) => randomErasing(t, rng, { p: cfg.eraseProb, scale: cfg.eraseScale }),
  ];
  let y = x;
  for (const step of steps) {
    const next = step(y);
    if (y !== x) y.dispose(); // intermediate views are freed at once
    y = next;
  }
  return y === x ? x.clone() : y;
}

export interface MultiViewOptions {
  /** Number of views per image. Default 2. */
  views?: number;
  /** One config for every view, or one per view (e.g. BYOL's asymmetric blur/solarize). */
  augment?: Partial<ViewAugmentConfig> | Partial<ViewAugmentConfig>[];
}

/**
 * The multi-view wrapper: applies the view transform `views` times with independent streams
 * derived from `seed` (view v uses deriveSeed(seed, v)). Same seed → same views.
 * x: [N, H, W, C] in [0, 1] → `views` tensors [N, size, size, C] in [0, 1].
 */
export function multiView(x: tf.Tensor4D, opts: MultiViewOptions, seed: number): tf.Tensor4D[] {
  const count = opts.views ?? 2;
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`views must be an integer >= 1, got ${count}`);
  const given = opts.augment ?? {};
  const per = Array.isArray(given) ? given : Array.from({ length: count }, () => given);
  if (per.length !== count) throw new RangeError(`got ${per.length} augment configs for ${count} views`);
  return per.map((a, v) => augmentView(x, augmentConfig(a), new Rng(deriveSeed(seed, v))));
}

/** Raw bytes [N·S·S·C] → [N, S, S, C] in [0, 1], the space augmentations work in. */
export function pixelsToUnit(pixels: Uint8Array, count: number, size: number, channels: number): tf.Tensor4D {
  return tf.tidy(() => tf.tensor4d(pixels, [count, size, size, channels], 'int32').toFloat().div(255) as tf.Tensor4D);
}

/** A view in [0, 1] → 8-bit pixels (rounded), as a decoded image would be. */
export function unitToPixels(x: tf.Tensor4D): Uint8Array {
  const values = tf.tidy(() => x.mul(255).round().clipByValue(0, 255)).dataSync();
  return Uint8Array.from(values);
}

/**
 * A view in [0, 1] → model input, through the same `pixelsToTensor` that serving uses. The view is
 * quantised to 8 bits first, so training sees exactly what a decoded image would give.
 * x: [N, S, S, C] → [N, S, S, C] normalised with spec.mean / spec.std.
 */
export function toModelInput(x: tf.Tensor4D, spec: Pick<InputSpec, 'size' | 'channels' | 'mean' | 'std'>): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  if (h !== spec.size || w !== spec.size || c !== spec.channels) {
    throw new RangeError(`view shape ${h}x${w}x${c} does not match the model input ${spec.size}x${spec.size}x${spec.channels}`);
  }
  return pixelsToTensor(unitToPixels(x), n, spec);
}
