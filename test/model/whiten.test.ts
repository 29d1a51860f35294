import * as tf from '@tensorflow/tfjs';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { openDataset } from '../../src/data/open';
import { DEFAULT_BATCHING, Embedder } from '../../src/embed/embedder';
import { DEFAULT_DECODE_LIMITS } from '../../src/images/decode';
import { pixelsToTensor } from '../../src/images/preprocess';
import { loadModelDir } from '../../src/model/model-dir';
import { fitWhitening, gridPooling, MomentAccumulator, whitenModel } from '../../src/model/whiten';
import { initBackend } from '../../src/runtime/backend';
import { fmnistFixtures, FMNIST_DIR, tempDir, TEST_MODEL } from '../helpers';

beforeAll(() => initBackend('wasm'));

/** Mean and covariance of the rows of x [n, d]. */
function moments(x: Float32Array, d: number): { mean: number[]; cov: number[][] } {
  const n = x.length / d;
  const mean = Array.from({ length: d }, (_, j) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i * d + j];
    return s / n;
  });
  const cov = mean.map((mj, j) =>
    mean.map((mk, k) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += (x[i * d + j] - mj) * (x[i * d + k] - mk);
      return s / n;
    }),
  );
  return { mean, cov };
}

function applyWhitening(x: Float32Array, d: number, w: { kernel: Float32Array; bias: Float32Array }): Float32Array {
  return tf.tidy(() => tf.matMul(tf.tensor2d(x, [x.length / d, d]), tf.tensor2d(w.kernel, [d, w.bias.length])).add(tf.tensor1d(w.bias)).dataSync() as Float32Array);
}

describe('fitWhitening', () => {
  // Correlated data with very unequal variances: x = z·A with z standard normal-ish (seeded).
  const d = 6;
  const n = 2000;
  let seed = 3;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const A = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => (i === j ? 10 / (i + 1) : rand())));
  const x = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    const z = Array.from({ length: d }, () => rand() + rand() + rand());
    for (let j = 0; j < d; j++) x[r * d + j] = 5 + z.reduce((s, zi, i) => s + zi * A[i][j], 0);
  }
  const acc = async () => {
    const m = new MomentAccumulator(d);
    for (let s = 0; s < n; s += 512) {
      const t = tf.tensor2d(x.subarray(s * d, Math.min(n, s + 512) * d), [Math.min(512, n - s), d]);
      await m.add(t);
      t.dispose();
    }
    return m;
  };

  it('gives zero mean and identity covariance on the data it was fitted on', async () => {
    const m = await acc();
    expect(m.count).toBe(n);
    const w = fitWhitening(m, d, 0.5);
    const { mean, cov } = moments(applyWhitening(x, d, w), d);
    for (const v of mean) expect(Math.abs(v)).toBeLessThan(1e-3);
    cov.forEach((row, j) => row.forEach((v, k) => expect(v).toBeCloseTo(j === k ? 1 : 0, 2)));
    // Largest first, and the kept share of variance is all of it.
    expect(w.eigenvalues).toEqual([...w.eigenvalues].sort((a, b) => b - a));
    expect(w.keptVariance).toBeCloseTo(1, 6);
  });

  it('with power 0 only rotates: distances are kept when every direction is', async () => {
    const w = fitWhitening(await acc(), d, 0);
    const y = applyWhitening(x, d, w);
    const dist = (v: Float32Array, a: number, b: number) => Math.hypot(...Array.from({ length: d }, (_, j) => v[a * d + j] - v[b * d + j]));
    for (const [a, b] of [[0, 1], [5, 900], [17, 1999]]) expect(dist(y, a, b)).toBeCloseTo(dist(x, a, b), 2);
    // Variances along the kept directions are the eigenvalues, in order.
    const { cov } = moments(y, d);
    cov.forEach((row, j) => expect(row[j] / w.eigenvalues[j]).toBeCloseTo(1, 2));
  });

  it('keeps the largest directions when truncating, and refuses bad settings', async () => {
    const m = await acc();
    const w = fitWhitening(m, 2, 0.5);
    expect(w.bias).toHaveLength(2);
    expect(w.keptVariance).toBeGreaterThan(0.5);
    expect(w.keptVariance).toBeLessThan(1);
    expect(() => fitWhitening(m, 7, 0.5)).toThrow(/dims must be an integer from 1 to the source's 6/);
    expect(() => fitWhitening(m, 0, 0.5)).toThrow(/dims/);
    expect(() => fitWhitening(m, 2, 1.5)).toThrow(/power/);
    expect(() => fitWhitening(new MomentAccumulator(d), 2, 0.5)).toThrow(/at least 2 images/);
  });
});

describe('gridPooling', () => {
  it('cuts every map into exactly n x n cells that reach both edges', () => {
    for (let side = 1; side <= 32; side++) {
      for (let n = 1; n <= side; n++) {
        const { pool, stride } = gridPooling(side, n);
        expect({ side, n, cells: Math.floor((side - pool) / stride) + 1, lastEnd: (n - 1) * stride + pool }).toEqual({ side, n, cells: n, lastEnd: side });
        expect(pool).toBeGreaterThanOrEqual(stride);
      }
    }
    expect(gridPooling(7, 3)).toEqual({ pool: 3, stride: 2 });
    expect(gridPooling(7, 4)).toEqual({ pool: 4, stride: 1 });
  });
});

describe('whitenModel on real images', () => {
  const fixtures = fmnistFixtures();

  async function rawOutputs(dir: string): Promise<{ outputs: Float32Array[]; names: string[]; dims: number[] }> {
    const loaded = await loadModelDir(dir);
    const ds = await openDataset(FMNIST_DIR, { size: 28, channels: 1 });
    const x = pixelsToTensor(await ds.fetch(Array.from({ length: ds.count }, (_, i) => i)), ds.count, loaded.manifest.input);
    const out = loaded.model.predict(x);
    const list = Array.isArray(out) ? out : [out];
    const outputs = await Promise.all(list.map((t) => t.data() as Promise<Float32Array>));
    const dims = list.map((t) => t.shape[1] as number);
    tf.dispose([x, ...list]);
    loaded.model.dispose();
    return { outputs, names: loaded.manifest.outputs, dims };
  }

  it('adds a whitened output that the model then serves, fitted without labels, leaving the encoder as it was', async () => {
    const out = path.join(tempDir(), 'whitened');
    const ds = await openDataset(FMNIST_DIR, { size: 28, channels: 1 });
    const result = await whitenModel(TEST_MODEL, ds, out, { source: 'encoder', grid: 3, dims: 32, power: 0.5 });
    expect(result.images).toBe(fixtures.length);
    expect(result.id).toMatch(/^random-mini@[0-9a-f]{12}:whitened$/);

    const loaded = await loadModelDir(out);
    expect(loaded.manifest.outputs).toEqual(['encoder', 'whitened']);
    expect(loaded.manifest.embedding).toMatchObject({ output: 'whitened', dim: 32 });
    // Its near-duplicate threshold is calibrated on copies of the fitting images (JPEG, upscaled).
    const calibration = loaded.manifest.whitening!.duplicateCalibration!;
    expect(calibration).toMatchObject({ images: 100, threshold: loaded.manifest.embedding.duplicateThreshold });
    expect(calibration.threshold).toBeGreaterThan(0);
    expect(calibration.threshold).toBeLessThanOrEqual(Math.min(0.95, calibration.copyScoreP01));
    expect(calibration.copyScoreMin).toBeLessThanOrEqual(calibration.copyScoreP01);
    expect(loaded.manifest.whitening).toMatchObject({ source: 'encoder', sourceDim: 128, dims: 32, power: 0.5, fittedOn: { data: `folder:${FMNIST_DIR}`, images: 100 } });
    expect(loaded.manifest.whitening!.fromModel).toMatch(/^random-mini@/);
    loaded.model.dispose();

    const before = await rawOutputs(TEST_MODEL);
    const after = await rawOutputs(out);
    // The encoder output is untouched (same layers, same weights).
    const maxDiff = before.outputs[0].reduce((m, v, i) => Math.max(m, Math.abs(v - after.outputs[0][i])), 0);
    expect(maxDiff).toBeLessThan(1e-5);
    // On the 100 images it was fitted on, the whitened output is centred with unit variance along each kept direction.
    const { mean, cov } = moments(after.outputs[1], 32);
    for (const v of mean) expect(Math.abs(v)).toBeLessThan(1e-2);
    cov.forEach((row, j) => row.forEach((v, k) => expect(Math.abs(v - (j === k ? 1 : 0))).toBeLessThan(2e-2)));

    // The embedder serves it: unit-length 32-d vectors, the same image embedded the same way twice.
    const embedder = await Embedder.open({ modelDir: out, workers: 0, backend: 'wasm', batching: DEFAULT_BATCHING, decode: DEFAULT_DECODE_LIMITS });
    try {
      expect(embedder.modelId).toBe(result.id);
      const [a, b] = await Promise.all([embedder.embedImage(fixtures[0].bytes), embedder.embedImage(fixtures[0].bytes)]);
      expect(a).toHaveLength(32);
      expect(Math.hypot(...a)).toBeCloseTo(1, 5);
      expect(Array.from(b)).toEqual(Array.from(a));
      // A JPEG copy of a fitting image scores at or above the calibrated threshold.
      const sharp = (await import('sharp')).default;
      let found = 0;
      for (const f of fixtures.slice(0, 20)) {
        const [orig, copy] = await Promise.all([embedder.embedImage(f.bytes), embedder.embedImage(await sharp(f.bytes).jpeg({ quality: 70 }).toBuffer())]);
        if (orig.reduce((s, x, i) => s + x * copy[i], 0) >= calibration.threshold) found++;
      }
      expect(found).toBeGreaterThanOrEqual(19);
    } finally {
      await embedder.close();
    }

    // Fitting again on a whitened model replaces its whitened output rather than stacking a second;
    // a source served with flip averaging passes it on.
    const manifestFile = path.join(out, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    fs.writeFileSync(manifestFile, JSON.stringify({ ...manifest, embedding: { ...manifest.embedding, tta: 'hflip' } }));
    const again = path.join(tempDir(), 'again');
    const second = await whitenModel(out, ds, again, { source: 'grid', grid: 2, dims: 16, power: 0.5 });
    expect(second.id).toMatch(/^random-mini@[0-9a-f]{12}:whitened\+hflip$/);
    const re = await loadModelDir(again);
    expect(re.manifest.outputs).toEqual(['encoder', 'whitened']);
    expect(re.manifest.embedding.tta).toBe('hflip');
    expect(re.manifest.whitening).toMatchObject({ source: 'grid', grid: 2, sourceDim: 2 * 2 * 128, dims: 16 });
    re.model.dispose();
  });

  it('refuses to overwrite its source, a grid larger than the feature map, too many dims, or images of the wrong size', async () => {
    const ds = await openDataset(FMNIST_DIR, { size: 28, channels: 1 });
    const out = path.join(tempDir(), 'w');
    await expect(whitenModel(TEST_MODEL, ds, TEST_MODEL, { source: 'encoder', grid: 3, power: 0.5 })).rejects.toThrow(/another directory/);
    await expect(whitenModel(TEST_MODEL, ds, out, { source: 'grid', grid: 8, power: 0.5 })).rejects.toThrow(/grid must be an integer from 1 to 7/);
    await expect(whitenModel(TEST_MODEL, ds, out, { source: 'encoder', grid: 3, dims: 129, power: 0.5 })).rejects.toThrow(/dims must be an integer from 1 to the source's 128/);
    await expect(whitenModel(TEST_MODEL, ds, out, { source: 'projection', grid: 3, power: 0.5 })).rejects.toThrow(/no output 'projection'/);
    const big = await openDataset(FMNIST_DIR, { size: 32, channels: 1 });
    await expect(whitenModel(TEST_MODEL, big, out, { source: 'encoder', grid: 3, power: 0.5 })).rejects.toThrow(/32x32x1, the model takes 28x28x1/);
    expect(fs.existsSync(out)).toBe(false);
  });

  it('runs from the command line, and its model can be trained further', async () => {
    const out = path.join(tempDir(), 'cli');
    const bin = path.join(__dirname, '..', '..', 'bin', 'likeness');
    const env = { ...process.env, LIKENESS_BACKEND: 'wasm', LIKENESS_WHITEN_DIMS: '24' };
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'whiten', '--model', TEST_MODEL, '--data', FMNIST_DIR, '--out', out, '--limit', '60'], { env });
    expect(JSON.parse(stdout)).toMatchObject({ out, images: 60, dims: 24, model: expect.stringMatching(/:whitened$/) });
    // The same command again would replace that model: refused unless --overwrite.
    const again = [bin, 'whiten', '--model', TEST_MODEL, '--data', FMNIST_DIR, '--out', out, '--limit', '60'];
    await expect(promisify(execFile)(process.execPath, again, { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/already holds a model: pass --overwrite to replace it/) });
    await promisify(execFile)(process.execPath, [...again, '--overwrite'], { env });
    const { stdout: info } = await promisify(execFile)(process.execPath, [bin, 'info', '--model', out, '--data-dir', tempDir()], { env });
    expect(JSON.parse(info).model).toMatchObject({ id: expect.stringMatching(/:whitened$/), embedding: { output: 'whitened', dim: 24 } });
    // A whitened model is a starting point for more training: its encoder is taken, the whitening left behind.
    const trained = path.join(tempDir(), 'trained');
    await promisify(execFile)(process.execPath, [bin, 'train', '--method', 'simclr', '--data', FMNIST_DIR, '--init-from', out, '--out', trained, '--epochs', '1', '--batch-size', '32', '--progress', 'log'], { env });
    const m = JSON.parse(fs.readFileSync(path.join(trained, 'manifest.json'), 'utf8'));
    expect({ outputs: m.outputs, embedding: m.embedding.output, whitening: m.whitening, from: m.training.initialisedFrom }).toEqual({ outputs: ['encoder', 'projection'], embedding: 'encoder', whitening: undefined, from: JSON.parse(stdout).model });
  });
});
