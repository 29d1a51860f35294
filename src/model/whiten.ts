/**
 * PCA whitening of a trained network's features, fitted without labels on a set of images (the
 * training split or the user's catalogue) and saved as one more output of the network, `whitened`.
 *
 * Why: contrastive features are anisotropic. A few directions carry most of the variance, so cosine
 * similarity is dominated by them and fine distinctions held in low-variance directions are drowned
 * out. Centring the features and scaling each principal direction to unit variance (Jégou & Chum,
 * ECCV 2012, "Negative evidences and co-occurrences in image retrieval: the benefit of PCA and
 * whitening") evens that out: x ↦ Λ^(−p) Uᵀ (x − μ), p = 1/2 for full whitening, with U and Λ the
 * eigenvectors and eigenvalues of the features' covariance. Measured here on the self-supervised
 * model: +4 points of k-NN top-1 on its encoder output (docs/TRAINING.md).
 *
 * Sources: the encoder output, the projection, or a `grid`: the last feature map average-pooled to
 * n × n cells and flattened. The grid keeps where things are in the picture, which the globally pooled
 * encoder output throws away; that helps for catalogues of centred, aligned product shots and costs
 * tolerance to shifted or differently cropped queries.
 *
 * The result is a plain tfjs model (the old outputs plus `whitened`, a dense layer on the unit-length
 * source), so serving, evaluation and the worker threads need nothing new; the model id changes
 * (new weights, `:whitened` suffix), so vectors of the unwhitened model are never mixed with these.
 */
import * as tf from '@tensorflow/tfjs';
import * as path from 'node:path';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import sharp from 'sharp';
import type { Dataset } from '../data/dataset';
import { embedTensor } from '../embed/engine';
import { decodeToPixels, DEFAULT_DECODE_LIMITS } from '../images/decode';
import { pixelsToTensor } from '../images/preprocess';
import { L2Normalize } from './l2-normalize';
import type { ModelManifest } from './manifest';
import { loadModelDir, saveModelDir } from './model-dir';

export const WHITEN_SOURCES = ['encoder', 'projection', 'grid'] as const;
export type WhitenSource = (typeof WHITEN_SOURCES)[number];

export interface WhitenOptions {
  source: WhitenSource;
  /** Cells per side of the grid source. */
  grid: number;
  /** Principal directions kept (default: all of the source's, at most 256). */
  dims?: number;
  /** Exponent p of Λ^(−p): 0.5 whitens fully, 0 only rotates and truncates (PCA). */
  power: number;
  batchSize?: number;
  /** Fitting images whose copies calibrate the near-duplicate threshold (default 200). */
  calibrationImages?: number;
  log?: (msg: string) => void;
}

export interface Whitening {
  /** [sourceDim, dims] row-major: column j is u_j / (λ_j + ε)^p. */
  kernel: Float32Array;
  /** −μᵀ·kernel, so the layer computes (x − μ)ᵀ·kernel. */
  bias: Float32Array;
  /** Eigenvalues of the kept directions, largest first. */
  eigenvalues: number[];
  /** Share of the source's variance in the kept directions. */
  keptVariance: number;
}

/** Running first and second moments of feature rows, in float64. */
export class MomentAccumulator {
  readonly sum: Float64Array;
  readonly gram: Float64Array;
  count = 0;

  constructor(readonly dim: number) {
    this.sum = new Float64Array(dim);
    this.gram = new Float64Array(dim * dim);
  }

  /** Adds a batch [n, dim]; the Gram matrix XᵀX is one matrix product on the backend. */
  async add(x: tf.Tensor2D): Promise<void> {
    const [sum, gram] = tf.tidy(() => [x.sum(0), tf.matMul(x, x, true, false)]);
    const [s, g] = await Promise.all([sum.data(), gram.data()]);
    tf.dispose([sum, gram]);
    for (let i = 0; i < this.dim; i++) this.sum[i] += s[i];
    for (let i = 0; i < g.length; i++) this.gram[i] += g[i];
    this.count += x.shape[0];
  }
}

/** Fits x ↦ Λ^(−p) Uᵀ (x − μ) on the accumulated moments, keeping the `dims` largest directions. */
export function fitWhitening(m: MomentAccumulator, dims: number, power: number): Whitening {
  const d = m.dim;
  if (m.count < 2) throw new RangeError('whitening needs at least 2 images');
  if (!Number.isInteger(dims) || dims < 1 || dims > d) throw new RangeError(`dims must be an integer from 1 to the source's ${d}`);
  if (!(power >= 0 && power <= 1)) throw new RangeError('power must be between 0 and 1');
  const mean = Array.from(m.sum, (s) => s / m.count);
  const cov = new Matrix(d, d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov.set(i, j, m.gram[i * d + j] / m.count - mean[i] * mean[j]);
  const eig = new EigenvalueDecomposition(cov, { assumeSymmetric: true });
  const values = eig.realEigenvalues.map((v) => Math.max(v, 0));
  const order = values.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, dims);
  // Directions with (almost) no variance, e.g. channels a ReLU never opens, would be blown up to
  // unit variance from rounding noise: ε keeps them at most 1e5^p times the noise.
  const eps = 1e-5 * order[0][0] + 1e-12;
  const kernel = new Float32Array(d * dims);
  const bias = new Float32Array(dims);
  order.forEach(([value, i], j) => {
    const scale = Math.pow(value + eps, -power);
    let b = 0;
    for (let r = 0; r < d; r++) {
      const w = eig.eigenvectorMatrix.get(r, i) * scale;
      kernel[r * dims + j] = w;
      b -= mean[r] * w;
    }
    bias[j] = b;
  });
  const total = values.reduce((a, b) => a + b, 0);
  return { kernel, bias, eigenvalues: order.map(([v]) => v), keptVariance: total > 0 ? order.reduce((a, [v]) => a + v, 0) / total : 1 };
}

/**
 * Average-pooling window and stride that cut a side × side map into exactly n × n cells covering all
 * of it: stride ⌊side / n⌋ and the window stretched to reach the far edge, so neighbouring cells
 * overlap when n does not divide the side ((side − pool) / stride + 1 = n).
 */
export function gridPooling(side: number, n: number): { pool: number; stride: number } {
  const stride = Math.floor(side / n);
  return { pool: side - stride * (n - 1), stride };
}

/** Copies a catalogue commonly holds of one image: re-encoded as JPEG, and upscaled (then decoded as the server would). */
const COPIES: Array<(img: ReturnType<typeof sharp>, size: number) => ReturnType<typeof sharp>> = [(img) => img.jpeg({ quality: 70 }), (img, size) => img.resize({ width: 4 * size }).png()];

export interface DuplicateCalibration {
  /** Suggested near-duplicate threshold: the 1st percentile of copy scores, rounded down to 0.05. */
  threshold: number;
  images: number;
  copyScoreMin: number;
  copyScoreP01: number;
  /** Share of pairs of distinct sampled images at or above the threshold. */
  distinctPairsAbove: number;
}

/**
 * Whitened scores have their own scale (copies score lower, unrelated images near 0), so the 0.95
 * near-duplicate default does not fit: measures the scores of JPEG and upscaled copies of up to
 * `sample` fitting images against their originals, and suggests a threshold.
 */
async function calibrateDuplicates(model: tf.LayersModel, output: number, data: Dataset, manifest: ModelManifest, sample: number): Promise<DuplicateCalibration> {
  const n = Math.min(sample, data.count);
  const idx = Array.from({ length: n }, (_, i) => i);
  const pixels = await data.fetch(idx);
  const { size, channels } = manifest.input;
  const per = size * size * channels;
  const variants: Uint8Array[] = [pixels];
  for (const make of COPIES) {
    const out = new Uint8Array(pixels.length);
    for (let i = 0; i < n; i++) {
      const raw = sharp(Buffer.from(pixels.subarray(i * per, (i + 1) * per)), { raw: { width: size, height: size, channels } });
      out.set(await decodeToPixels(await make(raw, size).toBuffer(), manifest.input, DEFAULT_DECODE_LIMITS), i * per);
    }
    variants.push(out);
  }
  const embedded = await Promise.all(
    variants.map(async (v) => {
      const x = pixelsToTensor(v, n, manifest.input);
      const y = embedTensor({ model, embeddingOutput: output }, x, manifest.embedding.tta); // as the server embeds
      const flat = (await y.data()) as Float32Array;
      tf.dispose([x, y]);
      return flat;
    }),
  );
  const dim = embedded[0].length / n;
  const dot = (a: Float32Array, i: number, b: Float32Array, j: number) => {
    let s = 0;
    for (let k = 0; k < dim; k++) s += a[i * dim + k] * b[j * dim + k];
    return s;
  };
  const copyScores = embedded.slice(1).flatMap((v) => idx.map((i) => dot(embedded[0], i, v, i))).sort((a, b) => a - b);
  const p01 = copyScores[Math.floor(0.01 * (copyScores.length - 1))];
  const threshold = Math.min(0.95, Math.max(0.05, Math.floor(p01 * 20) / 20));
  let above = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (dot(embedded[0], i, embedded[0], j) >= threshold) above++;
  return { threshold, images: n, copyScoreMin: copyScores[0], copyScoreP01: p01, distinctPairsAbove: n > 1 ? above / ((n * (n - 1)) / 2) : 0 };
}

/** The unit-length features whitening starts from, as a symbolic tensor of `model`. */
function sourceFeatures(model: tf.LayersModel, manifest: ModelManifest, opts: WhitenOptions): tf.SymbolicTensor {
  let x: tf.SymbolicTensor;
  if (opts.source === 'grid') {
    // 'features' is the encoder's global average pool; its input is the last feature map.
    const map = model.getLayer('features').input as tf.SymbolicTensor;
    const side = map.shape[1] as number;
    if (!Number.isInteger(opts.grid) || opts.grid < 1 || opts.grid > side) throw new RangeError(`grid must be an integer from 1 to ${side} (the last feature map is ${side}x${side})`);
    const { pool, stride } = gridPooling(side, opts.grid);
    x = tf.layers.averagePooling2d({ poolSize: pool, strides: stride, padding: 'valid', name: 'whiten_grid' }).apply(map) as tf.SymbolicTensor;
    x = tf.layers.flatten({ name: 'whiten_flatten' }).apply(x) as tf.SymbolicTensor;
  } else {
    const index = (manifest.outputs as string[]).indexOf(opts.source);
    if (index < 0) throw new RangeError(`the model has no output '${opts.source}'; its outputs are ${manifest.outputs.join(', ')}`);
    x = model.outputs[index];
  }
  return new L2Normalize({ name: 'whiten_l2' }).apply(x) as tf.SymbolicTensor;
}

/**
 * Fits whitening on every image of `data` and saves the model in `modelDir` with a `whitened` output
 * (served by default) to `outDir`. A model that is already whitened is fitted again from its source.
 */
export async function whitenModel(modelDir: string, data: Dataset, outDir: string, opts: WhitenOptions): Promise<{ id: string; whitening: Whitening; images: number; duplicates: DuplicateCalibration }> {
  if (path.resolve(outDir) === path.resolve(modelDir)) throw new RangeError('write the whitened model to another directory than its source');
  const loaded = await loadModelDir(modelDir);
  const { manifest, model } = loaded;
  const log = opts.log ?? (() => undefined);
  try {
    if (data.size !== manifest.input.size || data.channels !== manifest.input.channels) throw new RangeError(`the images are ${data.size}x${data.size}x${data.channels}, the model takes ${manifest.input.size}x${manifest.input.size}x${manifest.input.channels}`);
    const kept = manifest.outputs.map((name, i) => ({ name, tensor: model.outputs[i] })).filter((o) => o.name !== 'whitened');
    const features = sourceFeatures(model, manifest, opts);
    const extractor = tf.model({ inputs: model.inputs, outputs: features });
    const dim = features.shape[1] as number;
    const moments = new MomentAccumulator(dim);
    const batch = opts.batchSize ?? 256;
    for (let s = 0; s < data.count; s += batch) {
      const idx = Array.from({ length: Math.min(batch, data.count - s) }, (_, i) => s + i);
      const x = pixelsToTensor(await data.fetch(idx), idx.length, manifest.input);
      const y = extractor.predict(x) as tf.Tensor2D;
      await moments.add(y);
      tf.dispose([x, y]);
      if (s % (batch * 40) === 0) log(`features of ${s + idx.length} / ${data.count} images`);
    }
    const dims = opts.dims ?? Math.min(dim, 256);
    log(`fitting ${dims} of ${dim} directions on ${moments.count} images`);
    const whitening = fitWhitening(moments, dims, opts.power);
    const dense = tf.layers.dense({ units: dims, name: 'whitened' });
    const output = dense.apply(features) as tf.SymbolicTensor;
    const weights = [tf.tensor2d(whitening.kernel, [dim, dims]), tf.tensor1d(whitening.bias)];
    dense.setWeights(weights);
    tf.dispose(weights);
    const whitened = tf.model({ inputs: model.inputs, outputs: [...kept.map((o) => o.tensor), output] });
    const duplicates = await calibrateDuplicates(whitened, kept.length, data, manifest, opts.calibrationImages ?? 200);
    log(`near-duplicate threshold ${duplicates.threshold}: copies score ${duplicates.copyScoreMin.toFixed(3)} and up; ${(100 * duplicates.distinctPairsAbove).toFixed(2)}% of distinct pairs reach it`);
    const { quality: _stale, ...rest } = manifest; // measured on the old embedding
    const id = await saveModelDir(outDir, whitened, {
      ...rest,
      outputs: [...kept.map((o) => o.name), 'whitened'],
      // A source served with flip averaging keeps it: the whitened vectors of an image and its mirror are averaged the same way.
      embedding: { output: 'whitened', dim: dims, duplicateThreshold: duplicates.threshold, tta: manifest.embedding.tta },
      whitening: {
        source: opts.source,
        ...(opts.source === 'grid' && { grid: opts.grid }),
        sourceDim: dim,
        dims,
        power: opts.power,
        keptVariance: whitening.keptVariance,
        fittedOn: { data: data.name, images: moments.count },
        duplicateCalibration: duplicates,
        fromModel: loaded.id,
        fittedAt: new Date().toISOString(),
      },
    });
    return { id, whitening, images: moments.count, duplicates };
  } finally {
    model.dispose();
  }
}
