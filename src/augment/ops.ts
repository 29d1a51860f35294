/**
 * Batched image augmentations as tensor ops.
 *
 * Conventions: images are [N, H, W, C] float32 in [0, 1] (before mean/std normalisation), C is 1
 * (greyscale) or 3 (RGB). Every op draws its per-image parameters from the `Rng` it is given, in a
 * fixed order, then applies them to the whole batch at once; an image the op skips (probability p)
 * gets the identity parameters, so no op branches per image. Ops are synchronous and tidy: they
 * return one new tensor and leave their input alone.
 *
 * Semantics follow torchvision's transforms as used by SimCLR (Chen et al. 2020, arXiv:2002.05709,
 * appendix A) and lightly's SimCLRTransform.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from './rng';

/** ITU-R BT.601 luma weights, as torchvision's rgb_to_grayscale. */
export const LUMA = [0.299, 0.587, 0.114] as const;

function checkImages(x: tf.Tensor4D, op: string): void {
  if (x.rank !== 4) throw new RangeError(`${op}: expected images [N, H, W, C], got shape [${x.shape.join(', ')}]`);
  const c = x.shape[3];
  if (c !== 1 && c !== 3) throw new RangeError(`${op}: expected 1 or 3 channels, got ${c}`);
}

function checkProb(p: number, name: string): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${p}`);
}

function checkRange([lo, hi]: readonly [number, number], name: string, min = 0): void {
  if (!(lo >= min && hi >= lo && Number.isFinite(hi))) throw new RangeError(`${name} must be [lo, hi] with ${min} <= lo <= hi, got [${lo}, ${hi}]`);
}

/** Per-image scalar → [N, 1, 1, 1] tensor for broadcasting over pixels. */
function perImage(values: ArrayLike<number>): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from(values), [values.length, 1, 1, 1]);
}

/** Luma of [N, H, W, C] → [N, H, W, 1] (identity for C = 1). */
export function toGray(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    if (x.shape[3] === 1) return x.clone();
    return x.mul(tf.tensor1d([...LUMA])).sum(3, true) as tf.Tensor4D; // [N, H, W, 1]
  });
}

// ---------------------------------------------------------------------------------------------
// Random resized crop
// ---------------------------------------------------------------------------------------------

export interface CropOptions {
  /** Output side in pixels; default: the input side. */
  size?: number;
  /** Fraction of the image area the crop covers, sampled uniformly. Default [0.08, 1]. */
  scale?: [number, number];
  /** Crop aspect ratio w/h, sampled log-uniformly. Default [3/4, 4/3]. */
  ratio?: [number, number];
  /**
   * Probability of mirroring the crop left-right. The flip is folded into the crop box (x1 > x2
   * mirrors in cropAndResize), so it costs nothing; same result as a flip after the crop. Default 0.
   */
  flipProb?: number;
}

/**
 * One try of torchvision's box sampling: an area fraction drawn uniformly from `scale`, an aspect ratio
 * log-uniformly from [e^logLo, e^logHi]; returns the whole-pixel sides [√(area·ratio), √(area/ratio)].
 */
function drawBoxSides(rng: Rng, area: number, scale: [number, number], logLo: number, logHi: number): [number, number] {
  const target = area * rng.uniform(scale[0], scale[1]);
  const aspect = Math.exp(rng.uniform(logLo, logHi));
  return [Math.round(Math.sqrt(target * aspect)), Math.round(Math.sqrt(target / aspect))];
}

/**
 * One crop box [y1, x1, y2, x2] in cropAndResize's normalised coordinates, drawn as torchvision's
 * RandomResizedCrop.get_params: up to 10 tries at (area, ratio), then a central crop with the ratio
 * clamped to the allowed range.
 */
export function sampleCropBox(rng: Rng, height: number, width: number, scale: [number, number], ratio: [number, number]): [number, number, number, number] {
  const area = height * width;
  const [logLo, logHi] = [Math.log(ratio[0]), Math.log(ratio[1])];
  let h = height;
  let w = width;
  let top = 0;
  let left = 0;
  let found = false;
  for (let attempt = 0; attempt < 10 && !found; attempt++) {
    const [cw, ch] = drawBoxSides(rng, area, scale, logLo, logHi);
    if (cw > 0 && cw <= width && ch > 0 && ch <= height) {
      [h, w] = [ch, cw];
      top = rng.int(0, height - ch);
      left = rng.int(0, width - cw);
      found = true;
    }
  }
  if (!found) {
    const inRatio = width / height;
    if (inRatio < ratio[0]) [w, h] = [width, Math.round(width / ratio[0])];
    else if (inRatio > ratio[1]) [h, w] = [height, Math.round(height * ratio[1])];
    else [h, w] = [height, width];
    top = Math.floor((height - h) / 2);
    left = Math.floor((width - w) / 2);
  }
  // Pixel rows top..top+h-1 map to normalised y in [0, 1] through y * (H - 1).
  const ny = (p: number): number => (height > 1 ? p / (height - 1) : 0);
  const nx = (p: number): number => (width > 1 ? p / (width - 1) : 0);
  return [ny(top), nx(left), ny(top + h - 1), nx(left + w - 1)];
}

/**
 * Random resized crop: one box per image (tf.image.cropAndResize, bilinear).
 * x: [N, H, W, C] → [N, size, size, C].
 */
export function randomResizedCrop(x: tf.Tensor4D, rng: Rng, opts: CropOptions = {}): tf.Tensor4D {
  checkImages(x, 'randomResizedCrop');
  const scale = opts.scale ?? [0.08, 1];
  const ratio = opts.ratio ?? [3 / 4, 4 / 3];
  checkRange(scale, 'crop scale');
  if (!(scale[1] > 0 && scale[1] <= 1)) throw new RangeError(`crop scale upper bound must be in (0, 1], got ${scale[1]}`);
  checkRange(ratio, 'crop ratio');
  if (!(ratio[0] > 0)) throw new RangeError(`crop ratio lower bound must be > 0, got ${ratio[0]}`);
  const [n, height, width] = x.shape;
  const size = opts.size ?? height;
  const flipProb = opts.flipProb ?? 0;
  checkProb(flipProb, 'horizontal flip probability');
  const boxes = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const [y1, x1, y2, x2] = sampleCropBox(rng, height, width, scale, ratio);
    boxes.set(flipProb > 0 && rng.bernoulli(flipProb) ? [y1, x2, y2, x1] : [y1, x1, y2, x2], 4 * i);
  }
  return tf.tidy(() => {
    const boxInd = tf.range(0, n, 1, 'int32') as tf.Tensor1D; // [N]: box i crops image i
    return tf.image.cropAndResize(x, tf.tensor2d(boxes, [n, 4]), boxInd, [size, size], 'bilinear'); // [N, size, size, C]
  });
}

// ---------------------------------------------------------------------------------------------
// Flip
// ---------------------------------------------------------------------------------------------

/**
 * Mirrors each image left-right with probability p. [N, H, W, C] → same. (augmentView folds the
 * flip into the crop instead, see CropOptions.flipProb: tf.reverse is slow on the cpu backend.)
 */
export function randomHorizontalFlip(x: tf.Tensor4D, rng: Rng, p = 0.5): tf.Tensor4D {
  checkImages(x, 'randomHorizontalFlip');
  checkProb(p, 'horizontal flip probability');
  const flags = Array.from({ length: x.shape[0] }, () => (rng.bernoulli(p) ? 1 : 0));
  return tf.tidy(() => {
    const f = perImage(flags); // [N, 1, 1, 1], 1 = flip
    return x.reverse(2).mul(f).add(x.mul(tf.scalar(1).sub(f))) as tf.Tensor4D;
  });
}

// ---------------------------------------------------------------------------------------------
// Colour jitter
// ---------------------------------------------------------------------------------------------

export interface ColorJitterOptions {
  /** Probability that an image is jittered at all. Default 0.8. */
  p?: number;
  /** Multiplies the four amounts below (SimCLR's colour-distortion strength s). Default 1. */
  strength?: number;
  /** Brightness factor drawn from [max(0, 1 - b), 1 + b]. Default 0.8. */
  brightness?: number;
  /** Contrast factor drawn from [max(0, 1 - c), 1 + c]. Default 0.8. */
  contrast?: number;
  /** Saturation factor drawn from [max(0, 1 - s), 1 + s]; no-op on 1 channel. Default 0.8. */
  saturation?: number;
  /** Hue shift drawn from [-h, h] turns (h <= 0.5); no-op on 1 channel. Default 0.2. */
  hue?: number;
}

/**
 * RGB → YIQ (rows are output channels). A hue shift is a rotation of the (I, Q) chroma plane,
 * which is how we apply it: a per-image 3x3 colour matrix instead of an RGB→HSV→RGB round trip.
 * It matches torchvision's HSV hue shift closely for moderate saturation (not bit-exactly).
 */
const RGB_TO_YIQ = [
  [0.299, 0.587, 0.114],
  [0.596, -0.274, -0.322],
  [0.211, -0.523, 0.312],
];
const YIQ_TO_RGB = [
  [1, 0.956, 0.621],
  [1, -0.272, -0.647],
  [1, -1.106, 1.703],
];

function mat3Mul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
}

/** The 3x3 matrix M with rgb' = M rgb that rotates hue by `turns` of a full circle. */
export function hueRotationMatrix(turns: number): number[][] {
  const t = 2 * Math.PI * turns;
  const rot = [
    [1, 0, 0],
    [0, Math.cos(t), -Math.sin(t)],
    [0, Math.sin(t), Math.cos(t)],
  ];
  return mat3Mul(YIQ_TO_RGB, mat3Mul(rot, RGB_TO_YIQ));
}

/**
 * Colour jitter: brightness, contrast, saturation, hue, each factor drawn per image, applied in that
 * fixed order (torchvision shuffles the order per call; we keep it fixed so one batched pass does all
 * images), clamping to [0, 1] after each step as torchvision does.
 * brightness: x·b; contrast: (x − mean(gray(x)))·c + mean; saturation: (x − gray(x))·s + gray(x);
 * hue: YIQ rotation (see hueRotationMatrix). x: [N, H, W, C] → same.
 */
export function colorJitter(x: tf.Tensor4D, rng: Rng, opts: ColorJitterOptions = {}): tf.Tensor4D {
  checkImages(x, 'colorJitter');
  const p = opts.p ?? 0.8;
  const s = opts.strength ?? 1;
  checkProb(p, 'colour jitter probability');
  if (!(s >= 0)) throw new RangeError(`colour jitter strength must be >= 0, got ${s}`);
  const amounts = {
    brightness: s * (opts.brightness ?? 0.8),
    contrast: s * (opts.contrast ?? 0.8),
    saturation: s * (opts.saturation ?? 0.8),
    hue: s * (opts.hue ?? 0.2),
  };
  for (const [k, v] of Object.entries(amounts)) if (!(v >= 0)) throw new RangeError(`colour jitter ${k} must be >= 0, got ${v}`);
  if (amounts.hue > 0.5) throw new RangeError(`colour jitter hue must be <= 0.5 after strength, got ${amounts.hue}`);
  const n = x.shape[0];
  const rgb = x.shape[3] === 3;
  const factor = (a: number): number => rng.uniform(Math.max(0, 1 - a), 1 + a);
  const b = new Float32Array(n).fill(1);
  const c = new Float32Array(n).fill(1);
  const sat = new Float32Array(n).fill(1);
  const hues = new Float32Array(n * 9);
  for (let i = 0; i < n; i++) {
    let h = 0;
    if (rng.bernoulli(p)) {
      b[i] = factor(amounts.brightness);
      c[i] = factor(amounts.contrast);
      sat[i] = factor(amounts.saturation);
      h = rng.uniform(-amounts.hue, amounts.hue);
    }
    // Row-vector form: rgb'ᵀ = rgbᵀ Mᵀ, so store Mᵀ.
    const m = hueRotationMatrix(h);
    for (let r = 0; r < 3; r++) for (let q = 0; q < 3; q++) hues[i * 9 + r * 3 + q] = h === 0 ? (r === q ? 1 : 0) : m[q][r];
  }
  return tf.tidy(() => {
    const [, height, width, ch] = x.shape;
    let y = x.mul(perImage(b)).clipByValue(0, 1) as tf.Tensor4D; // brightness
    const mean = toGray(y).mean([1, 2, 3], true); // [N, 1, 1, 1]
    y = y.sub(mean).mul(perImage(c)).add(mean).clipByValue(0, 1) as tf.Tensor4D; // contrast
    if (!rgb) return y;
    const gray = toGray(y); // [N, H, W, 1]
    y = y.sub(gray).mul(perImage(sat)).add(gray).clipByValue(0, 1) as tf.Tensor4D; // saturation
    const flat = y.reshape([n, height * width, ch]) as tf.Tensor3D; // [N, HW, 3]
    const mt = tf.tensor3d(hues, [n, 3, 3]); // [N, 3, 3] = Mᵀ per image
    return tf.matMul(flat, mt).reshape([n, height, width, ch]).clipByValue(0, 1) as tf.Tensor4D; // hue
  });
}

// ---------------------------------------------------------------------------------------------
// Grayscale, solarize
// ---------------------------------------------------------------------------------------------

/** Replaces an RGB image by its luma in all three channels with probability p; no-op on 1 channel. */
export function randomGrayscale(x: tf.Tensor4D, rng: Rng, p = 0.2): tf.Tensor4D {
  checkImages(x, 'randomGrayscale');
  checkProb(p, 'grayscale probability');
  const flags = Array.from({ length: x.shape[0] }, () => (rng.bernoulli(p) ? 1 : 0));
  if (x.shape[3] === 1) return x.clone();
  return tf.tidy(() => {
    const g = perImage(flags); // [N, 1, 1, 1], 1 = grey
    return x.mul(tf.scalar(1).sub(g)).add(toGray(x).mul(g)) as tf.Tensor4D; // gray broadcasts over C
  });
}

/** Solarization (BYOL, arXiv:2006.07733): pixels >= threshold become 1 − x, with probability p per image. */
export function randomSolarize(x: tf.Tensor4D, rng: Rng, p = 0, threshold = 0.5): tf.Tensor4D {
  checkImages(x, 'randomSolarize');
  checkProb(p, 'solarize probability');
  const flags = Array.from({ length: x.shape[0] }, () => (rng.bernoulli(p) ? 1 : 0));
  return tf.tidy(() => {
    const f = perImage(flags);
    const solar = tf.where(x.greaterEqual(threshold), tf.scalar(1).sub(x), x);
    return x.add(solar.sub(x).mul(f)) as tf.Tensor4D;
  });
}

// ---------------------------------------------------------------------------------------------
// Gaussian blur
// ---------------------------------------------------------------------------------------------

export interface BlurOptions {
  /** Probability that an image is blurred. Default 0.5. */
  p?: number;
  /** Sigma drawn uniformly from this range, in pixels. Default [0.1, 2]. */
  sigma?: [number, number];
  /** Kernel side as a fraction of the image side, rounded to an odd number >= 3. Default 0.1. */
  kernelFraction?: number;
}

/** Odd kernel side for an image side: round(fraction·side), forced odd and at least 3. */
export function blurKernelSize(side: number, fraction = 0.1): number {
  const k = Math.max(3, Math.round(fraction * side));
  return k % 2 === 1 ? k : k + 1;
}

function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
  return i;
}

/**
 * [side, side] matrix B with (B v)_i = Σ_t g(t) v_{reflect(i+t)}: a 1-D Gaussian of `sigma`
 * truncated to `kernel` taps, normalised to sum 1, with reflect padding (as torchvision).
 * sigma 0 gives the identity.
 */
export function blurMatrix(side: number, kernel: number, sigma: number): Float32Array {
  const m = new Float32Array(side * side);
  if (sigma === 0) {
    for (let i = 0; i < side; i++) m[i * side + i] = 1;
    return m;
  }
  const r = Math.floor(kernel / 2);
  const taps = Array.from({ length: 2 * r + 1 }, (_, k) => Math.exp(-((k - r) ** 2) / (2 * sigma * sigma)));
  const total = taps.reduce((a, v) => a + v, 0);
  for (let i = 0; i < side; i++) for (let t = -r; t <= r; t++) m[i * side + reflect(i + t, side)] += taps[t + r] / total;
  return m;
}

/**
 * Separable Gaussian blur with a different sigma per image. Each 1-D pass is one batched matMul with
 * a per-image [side, side] band matrix (blurMatrix), which handles per-image kernels and reflect
 * padding in a single op. x: [N, H, W, C] → same.
 */
export function randomGaussianBlur(x: tf.Tensor4D, rng: Rng, opts: BlurOptions = {}): tf.Tensor4D {
  checkImages(x, 'randomGaussianBlur');
  const p = opts.p ?? 0.5;
  const sigmaRange = opts.sigma ?? [0.1, 2];
  checkProb(p, 'blur probability');
  checkRange(sigmaRange, 'blur sigma');
  const [n, height, width, ch] = x.shape;
  const kh = blurKernelSize(height, opts.kernelFraction ?? 0.1);
  const kw = blurKernelSize(width, opts.kernelFraction ?? 0.1);
  const sigmas = Array.from({ length: n }, () => (rng.bernoulli(p) ? rng.uniform(sigmaRange[0], sigmaRange[1]) : 0));
  if (sigmas.every((s) => s === 0)) return x.clone();
  const rows = new Float32Array(n * height * height);
  const cols = new Float32Array(n * width * width);
  sigmas.forEach((s, i) => {
    rows.set(blurMatrix(height, kh, s), i * height * height);
    cols.set(blurMatrix(width, kw, s), i * width * width);
  });
  return tf.tidy(() => {
    // Vertical pass: [N, H, H] @ [N, H, W·C].
    let y = tf.matMul(tf.tensor3d(rows, [n, height, height]), x.reshape([n, height, width * ch]) as tf.Tensor3D);
    // Horizontal pass on the transposed layout: [N, W, W] @ [N, W, H·C].
    const t = y.reshape([n, height, width, ch]).transpose([0, 2, 1, 3]).reshape([n, width, height * ch]) as tf.Tensor3D;
    y = tf.matMul(tf.tensor3d(cols, [n, width, width]), t);
    return y.reshape([n, width, height, ch]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
  });
}

// ---------------------------------------------------------------------------------------------
// Random erasing
// ---------------------------------------------------------------------------------------------

export interface EraseOptions {
  /** Probability that an image gets a rectangle erased. Default 0.5. */
  p?: number;
  /** Fraction of the image area the rectangle covers, sampled uniformly. Default [0.02, 0.33]. */
  scale?: [number, number];
  /** Rectangle aspect ratio h/w, sampled log-uniformly. Default [0.3, 3.3]. */
  ratio?: [number, number];
}

/**
 * One erase box [top, left, height, width] in pixels, drawn as torchvision's RandomErasing.get_params:
 * up to 10 tries at (area, ratio) for a box that fits strictly inside; null when none fits.
 */
export function sampleEraseBox(rng: Rng, height: number, width: number, scale: [number, number], ratio: [number, number]): [number, number, number, number] | null {
  const [logLo, logHi] = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const [h, w] = drawBoxSides(rng, height * width, scale, logLo, logHi); // ratio is h/w here
    if (h < 1 || w < 1 || h >= height || w >= width) continue;
    return [rng.int(0, height - h), rng.int(0, width - w), h, w];
  }
  return null;
}

/**
 * Random erasing (Zhong et al. 2020, "Random Erasing Data Augmentation", AAAI, Algorithm 1): with
 * probability p, a random rectangle of the image is filled with uniform random values in [0, 1], so the
 * model cannot rely on any one part of an object (in that paper it lowers test error on Fashion-MNIST as
 * on CIFAR). Applied last, on the finished view. p = 0 draws nothing from the rng, so a run without erasing
 * keeps exactly the views it had before this op existed.
 */
export function randomErasing(x: tf.Tensor4D, rng: Rng, opts: EraseOptions = {}): tf.Tensor4D {
  checkImages(x, 'randomErasing');
  const { p = 0.5, scale = [0.02, 0.33], ratio = [0.3, 3.3] } = opts;
  checkProb(p, 'erase probability');
  checkRange(scale, 'erase scale');
  if (scale[1] > 1) throw new RangeError(`erase scale must be within [0, 1], got [${scale[0]}, ${scale[1]}]`);
  checkRange(ratio, 'erase ratio');
  if (ratio[0] === 0) throw new RangeError(`erase ratio must be above 0, got [${ratio[0]}, ${ratio[1]}]`);
  if (p === 0) return x.clone();
  const [n, height, width, c] = x.shape;
  const mask = new Float32Array(n * height * width);
  const fill = new Float32Array(n * height * width * c);
  for (let i = 0; i < n; i++) {
    if (!rng.bernoulli(p)) continue;
    const box = sampleEraseBox(rng, height, width, scale, ratio);
    if (!box) continue;
    const [top, left, h, w] = box;
    for (let y = top; y < top + h; y++) {
      for (let xx = left; xx < left + w; xx++) {
        const pixel = (i * height + y) * width + xx;
        mask[pixel] = 1;
        for (let ch = 0; ch < c; ch++) fill[pixel * c + ch] = rng.next();
      }
    }
  }
  return tf.tidy(() => {
    const m = tf.tensor4d(mask, [n, height, width, 1]);
    return x.mul(tf.scalar(1).sub(m)).add(tf.tensor4d(fill, [n, height, width, c]).mul(m)) as tf.Tensor4D;
  });
}
