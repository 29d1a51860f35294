import * as tf from '@tensorflow/tfjs';
import { Embedder, EmbedderOptions } from '../../src/embed/embedder';
import { DEFAULT_DECODE_LIMITS } from '../../src/images/decode';
import { pixelsToTensor } from '../../src/images/preprocess';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadModelDir, outputTwin, readManifest } from '../../src/model/model-dir';
import { initBackend } from '../../src/runtime/backend';
import { fmnistFixtures, tempDir, TEST_MODEL } from '../helpers';

const options = (workers: number, batches: number[] = []): EmbedderOptions => ({
  modelDir: TEST_MODEL,
  workers,
  backend: 'wasm',
  batching: { maxBatch: 16, maxWaitMs: 20, maxQueue: 64 },
  decode: DEFAULT_DECODE_LIMITS,
  onBatch: (size) => batches.push(size),
});

describe('Embedder', () => {
  const fixtures = fmnistFixtures().slice(0, 40);
  let local: Embedder;
  const localBatches: number[] = [];

  beforeAll(async () => {
    await initBackend('wasm');
    local = await Embedder.open(options(0, localBatches));
  });
  afterAll(() => local.close());

  it('returns unit-length vectors equal to a direct forward pass of the model', async () => {
    const v = await local.embedImage(fixtures[0].bytes);
    expect(v).toHaveLength(128);
    expect(Math.hypot(...v)).toBeCloseTo(1, 5);
    const loaded = await loadModelDir(TEST_MODEL);
    const pixels = await local.decode(fixtures[0].bytes);
    const direct = tf.tidy(() => {
      const y = loaded.model.predict(pixelsToTensor(pixels, 1, loaded.manifest.input)) as tf.Tensor2D;
      return y.div(y.norm()).dataSync();
    });
    loaded.model.dispose();
    v.forEach((x, i) => expect(x).toBeCloseTo(direct[i], 5));
  });

  it('micro-batches concurrent requests into few model calls, without mixing up results', async () => {
    localBatches.length = 0;
    const one = await Promise.all(fixtures.slice(0, 16).map((f) => local.embedImage(f.bytes)));
    expect(localBatches.length).toBeLessThanOrEqual(2);
    expect(localBatches.reduce((a, b) => a + b, 0)).toBe(16);
    // Each result belongs to its own request: same as embedding alone.
    for (const i of [0, 7, 15]) {
      const alone = await local.embedImage(fixtures[i].bytes);
      alone.forEach((x, j) => expect(x).toBeCloseTo(one[i][j], 5));
    }
  });

  it('a worker pool gives the same vectors as in-thread inference', async () => {
    const pool = await Embedder.open(options(2));
    try {
      const pixels = await Promise.all(fixtures.map((f) => pool.decode(f.bytes)));
      const [a, b] = await Promise.all([pool.embedMany(pixels), local.embedMany(pixels)]);
      expect(a).toHaveLength(fixtures.length);
      a.forEach((v, i) => v.forEach((x, j) => expect(x).toBeCloseTo(b[i][j], 4)));
    } finally {
      await pool.close();
    }
  });

  it("serves a network's projection through an output twin, under its own model id", async () => {
    const shipped = path.join(__dirname, '..', '..', 'models', 'fmnist-supcon-mini'); // outputs: encoder (64), projection (128)
    const twin = await outputTwin(shipped, 'projection');
    const [encoder, projection] = [await Embedder.open({ ...options(0), modelDir: shipped }), await Embedder.open({ ...options(0), modelDir: twin })];
    try {
      expect(projection.modelId).toBe(`${encoder.modelId}:projection`);
      const pixels = await encoder.decode(fixtures[0].bytes);
      const [h, z] = [await encoder.embedPixels(pixels), await projection.embedPixels(pixels)];
      const loaded = await loadModelDir(shipped);
      const direct = tf.tidy(() => (loaded.model.predict(pixelsToTensor(pixels, 1, loaded.manifest.input)) as tf.Tensor2D[]).map((y) => y.div(y.norm()).dataSync()));
      loaded.model.dispose();
      expect([h.length, z.length]).toEqual([64, 128]);
      h.forEach((x, i) => expect(x).toBeCloseTo(direct[0][i], 5));
      z.forEach((x, i) => expect(x).toBeCloseTo(direct[1][i], 5));
      await expect(outputTwin(TEST_MODEL, 'projection')).rejects.toThrow(/has no output 'projection'; its outputs are encoder/);
    } finally {
      await Promise.all([encoder.close(), projection.close()]);
      fs.rmSync(twin, { recursive: true, force: true });
    }
  });

  it("with tta 'hflip', serves the normalised mean of an image's and its mirror image's vectors, under its own model id", async () => {
    const { size, channels } = local.manifest.input;
    const mirror = (p: Uint8Array): Uint8Array => {
      const out = new Uint8Array(p.length); // row-major [size, size, channels]: reverse each row's pixels
      for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < channels; c++) out[(y * size + x) * channels + c] = p[(y * size + size - 1 - x) * channels + c];
      return out;
    };
    const [flipLocal, flipPool] = [await Embedder.open({ ...options(0), tta: 'hflip' }), await Embedder.open({ ...options(2), tta: 'hflip' })];
    try {
      expect(local.modelId).not.toContain('+hflip');
      expect(flipLocal.modelId).toBe(`${local.modelId}+hflip`);
      expect(flipPool.modelId).toBe(flipLocal.modelId);
      const pixels = await Promise.all(fixtures.slice(0, 8).map((f) => local.decode(f.bytes)));
      const mirrored = pixels.map(mirror);
      const [plain, plainMirrored, tta, ttaMirrored, ttaPool] = await Promise.all([
        local.embedMany(pixels),
        local.embedMany(mirrored),
        flipLocal.embedMany(pixels),
        flipLocal.embedMany(mirrored),
        flipPool.embedMany(pixels),
      ]);
      pixels.forEach((_, i) => {
        const sum = plain[i].map((x, j) => x + plainMirrored[i][j]);
        const norm = Math.hypot(...sum);
        expect(Math.hypot(...tta[i])).toBeCloseTo(1, 5);
        tta[i].forEach((x, j) => {
          expect(x).toBeCloseTo(sum[j] / norm, 5);
          expect(ttaMirrored[i][j]).toBeCloseTo(x, 5); // mirror images embed alike
          expect(ttaPool[i][j]).toBeCloseTo(x, 5);
        });
      });
      // Fashion-MNIST items are not mirror-symmetric: flip averaging changes the vectors.
      expect(Math.max(...plain.map((v, i) => Math.max(...v.map((x, j) => Math.abs(x - tta[i][j])))))).toBeGreaterThan(0.01);
    } finally {
      await Promise.all([flipLocal.close(), flipPool.close()]);
    }
  });

  it("takes test-time augmentation from the manifest; --tta none turns it off; output twins keep it", async () => {
    const dir = tempDir();
    for (const f of fs.readdirSync(TEST_MODEL)) fs.copyFileSync(path.join(TEST_MODEL, f), path.join(dir, f));
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, embedding: { ...manifest.embedding, tta: 'hflip' } }));
    const twin = await outputTwin(dir, manifest.embedding.output);
    const [fromManifest, off] = [await Embedder.open({ ...options(0), modelDir: dir }), await Embedder.open({ ...options(0), modelDir: dir, tta: 'none' })];
    try {
      expect(fromManifest.modelId).toMatch(/\+hflip$/);
      expect(off.modelId).not.toContain('+hflip');
      expect(readManifest(twin).embedding.tta).toBe('hflip');
      const pixels = await local.decode(fixtures[3].bytes);
      const [a, b, c] = [await fromManifest.embedPixels(pixels), await off.embedPixels(pixels), await local.embedPixels(pixels)];
      b.forEach((x, j) => expect(x).toBeCloseTo(c[j], 5)); // same weights, one pass
      expect(Math.max(...a.map((x, j) => Math.abs(x - c[j])))).toBeGreaterThan(0.01);
    } finally {
      await Promise.all([fromManifest.close(), off.close()]);
      fs.rmSync(twin, { recursive: true, force: true });
    }
  });

  it('fails fast with 503 when the queue is full', async () => {
    const busy = await Embedder.open({ ...options(0), batching: { maxBatch: 4, maxWaitMs: 50, maxQueue: 3 } });
    try {
      const pixels = await busy.decode(fixtures[0].bytes);
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => busy.embedPixels(pixels)));
      const rejected = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
      expect(rejected.length).toBeGreaterThan(0);
      expect(rejected[0].reason).toMatchObject({ status: 503, code: 'EMBED_QUEUE_FULL' });
    } finally {
      await busy.close();
    }
  });

  it('counts batches handed to the engine but not yet answered against the queue limit', async () => {
    // Full batches of 2 leave the micro-batcher at once; without counting them, a burst of any size
    // would be admitted and pile up in the engine's queue.
    const busy = await Embedder.open({ ...options(1), batching: { maxBatch: 2, maxWaitMs: 1, maxQueue: 4 } });
    try {
      const pixels = await busy.decode(fixtures[0].bytes);
      const results = await Promise.allSettled(Array.from({ length: 12 }, () => busy.embedPixels(pixels)));
      expect(results.map((r) => r.status)).toEqual([...Array(4).fill('fulfilled'), ...Array(8).fill('rejected')]);
      await expect(busy.embedPixels(pixels)).resolves.toHaveLength(busy.dim); // answered work frees the queue
    } finally {
      await busy.close();
    }
  });
});
