import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import {
  blurKernelSize,
  blurMatrix,
  colorJitter,
  hueRotationMatrix,
  randomErasing,
  randomGaussianBlur,
  randomGrayscale,
  randomHorizontalFlip,
  randomResizedCrop,
  randomSolarize,
  sampleCropBox,
  sampleEraseBox,
} from '../../src/augment/ops';
import { Rng } from '../../src/augment/rng';
import { augmentConfig, multiView, pixelsToUnit, toModelInput } from '../../src/augment/views';
import { writeViewGrid } from '../../src/augment/grid';
import { writeAugmentGrid } from '../../src/cli/commands/augment';
import { readFashionMnist } from '../../src/data/idx';

tf.env().set('IS_TEST', true);
beforeAll(async () => {
  await tf.setBackend('cpu');
});

const fmnist = (n: number): tf.Tensor4D => pixelsToUnit(readFashionMnist('test').images.slice(0, n * 784), n, 28, 1);
const rgb = (n: number, size = 16): tf.Tensor4D => tf.randomUniform([n, size, size, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
const same = (a: tf.Tensor, b: tf.Tensor): boolean => tf.tidy(() => a.shape.join() === b.shape.join() && tf.equal(a, b).all().dataSync()[0] === 1);

describe('multiView', () => {
  it('gives views of the requested size in [0, 1], for 1 and 3 channels', () => {
    for (const x of [fmnist(6), rgb(6, 32)]) {
      const views = multiView(x, { views: 3, augment: { size: 20 } }, 1);
      expect(views).toHaveLength(3);
      for (const v of views) {
        expect(v.shape).toEqual([6, 20, 20, x.shape[3]]);
        expect(v.min().dataSync()[0]).toBeGreaterThanOrEqual(0);
        expect(v.max().dataSync()[0]).toBeLessThanOrEqual(1);
      }
    }
  });

  it('is deterministic: same seed, same views; another seed, other views', () => {
    const x = rgb(4);
    const a = multiView(x, { views: 2 }, 42);
    const b = multiView(x, { views: 2 }, 42);
    const c = multiView(x, { views: 2 }, 43);
    expect(same(a[0], b[0]) && same(a[1], b[1])).toBe(true);
    expect(same(a[0], c[0])).toBe(false);
    expect(same(a[0], a[1])).toBe(false); // two views differ
  });

  it('takes one config per view', () => {
    const x = fmnist(2);
    const [plain, solar] = multiView(x, { views: 2, augment: [{ solarizeProb: 0 }, { solarizeProb: 1, cropScale: [1, 1], cropRatio: [1, 1], hflipProb: 0, jitterProb: 0, blurProb: 0 }] }, 0);
    expect(plain.shape).toEqual(solar.shape);
    expect(solar.max().dataSync()[0]).toBeLessThanOrEqual(1);
    expect(() => multiView(x, { views: 3, augment: [{}, {}] }, 0)).toThrow(/2 augment configs for 3 views/);
  });

  it('leaves no tensors behind', () => {
    const x = rgb(3);
    const before = tf.memory().numTensors;
    tf.dispose(multiView(x, { views: 2 }, 5));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('toModelInput quantises to 8 bits and normalises like serving', () => {
    const x = tf.fill([1, 2, 2, 1], 0.5) as tf.Tensor4D; // 127.5 → 128
    const y = toModelInput(x, { size: 2, channels: 1, mean: [0.5], std: [0.5] });
    expect(y.dataSync()[0]).toBeCloseTo((128 / 255 - 0.5) / 0.5, 6);
    expect(() => toModelInput(x, { size: 3, channels: 1, mean: [0.5], std: [0.5] })).toThrow(/does not match the model input 3x3x1/);
  });

  it('rejects bad knobs with the value in the message', () => {
    const x = rgb(1);
    expect(() => multiView(x, { augment: { hflipProb: 2 } }, 0)).toThrow(/got 2/);
    expect(() => multiView(x, { augment: { cropScale: [0.5, 0.1] } }, 0)).toThrow(/\[0.5, 0.1\]/);
    expect(() => multiView(x, { views: 0 }, 0)).toThrow(/got 0/);
    expect(augmentConfig({}).jitterProb).toBe(0.8);
  });
});

describe('ops', () => {
  it('crop boxes stay inside the image and respect scale and ratio', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 200; i++) {
      const [y1, x1, y2, x2] = sampleCropBox(rng, 28, 28, [0.08, 1], [3 / 4, 4 / 3]);
      for (const v of [y1, x1, y2, x2]) expect(v >= 0 && v <= 1).toBe(true);
      const h = (y2 - y1) * 27 + 1;
      const w = (x2 - x1) * 27 + 1;
      expect((h * w) / 784).toBeLessThanOrEqual(1.0001);
      expect(w / h).toBeGreaterThan(0.6);
      expect(w / h).toBeLessThan(1.6);
    }
  });

  it('a full-image crop with p(flip) = 1 equals the mirrored image', () => {
    const x = rgb(2, 8);
    const crop = randomResizedCrop(x, new Rng(0), { scale: [1, 1], ratio: [1, 1], flipProb: 1 });
    expect(tf.sub(crop, x.reverse(2)).abs().max().dataSync()[0]).toBeLessThan(1e-5);
    expect(same(randomHorizontalFlip(x, new Rng(0), 1), x.reverse(2))).toBe(true);
    expect(same(randomHorizontalFlip(x, new Rng(0), 0), x)).toBe(true);
  });

  it('grayscale, saturation and hue are no-ops on 1 channel', () => {
    const x = fmnist(3);
    expect(same(randomGrayscale(x, new Rng(0), 1), x)).toBe(true);
    const jittered = colorJitter(x, new Rng(0), { p: 1, brightness: 0, contrast: 0, saturation: 1, hue: 0.5 });
    expect(tf.sub(jittered, x).abs().max().dataSync()[0]).toBeLessThan(1e-6);
  });

  it('grayscale makes the three channels equal to the luma', () => {
    const g = randomGrayscale(rgb(2), new Rng(0), 1);
    const [r, gg, b] = tf.split(g, 3, 3);
    expect(same(r, gg) && same(gg, b)).toBe(true);
  });

  it('hue rotation by 0 is the identity and keeps grey grey', () => {
    const m0 = hueRotationMatrix(0);
    m0.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(i === j ? 1 : 0, 2)));
    const m = hueRotationMatrix(0.3);
    const grey = m.map((row) => row.reduce((a, v) => a + v * 0.5, 0));
    grey.forEach((v) => expect(v).toBeCloseTo(0.5, 2));
  });

  it('blur matrices are row-stochastic, sigma 0 is the identity, and the kernel is ~10% of the side', () => {
    expect(blurKernelSize(28)).toBe(3);
    expect(blurKernelSize(224)).toBe(23);
    const m = blurMatrix(10, 5, 1.2);
    for (let i = 0; i < 10; i++) expect(m.slice(i * 10, i * 10 + 10).reduce((a, v) => a + v, 0)).toBeCloseTo(1, 5);
    const id = blurMatrix(4, 3, 0);
    expect(Array.from(id)).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  });

  it('blur keeps a constant image constant and smooths an impulse', () => {
    const flat = tf.fill([1, 9, 9, 1], 0.4) as tf.Tensor4D;
    expect(tf.sub(randomGaussianBlur(flat, new Rng(0), { p: 1 }), flat).abs().max().dataSync()[0]).toBeLessThan(1e-6);
    const impulse = tf.buffer([1, 9, 9, 1]);
    impulse.set(1, 0, 4, 4, 0);
    const blurred = randomGaussianBlur(impulse.toTensor() as tf.Tensor4D, new Rng(0), { p: 1, sigma: [1, 1] });
    expect(blurred.max().dataSync()[0]).toBeLessThan(1);
    expect(blurred.sum().dataSync()[0]).toBeCloseTo(1, 4);
  });

  it('solarize inverts pixels above the threshold', () => {
    const x = tf.tensor4d([0.2, 0.6], [1, 1, 2, 1]);
    expect(Array.from(randomSolarize(x, new Rng(0), 1, 0.5).dataSync())).toEqual([expect.closeTo(0.2, 6), expect.closeTo(0.4, 6)]);
  });
});

describe('random erasing', () => {
  it('erase boxes fit inside the image with area and ratio in range', () => {
    const rng = new Rng(11);
    let drawn = 0;
    for (let i = 0; i < 500; i++) {
      const box = sampleEraseBox(rng, 28, 28, [0.02, 0.33], [0.3, 3.3]);
      if (!box) continue;
      drawn++;
      const [top, left, h, w] = box;
      expect(top).toBeGreaterThanOrEqual(0);
      expect(left).toBeGreaterThanOrEqual(0);
      expect(top + h).toBeLessThanOrEqual(28);
      expect(left + w).toBeLessThanOrEqual(28);
      // Rounding each side to whole pixels moves area and ratio a little at 28 px.
      expect((h * w) / 784).toBeGreaterThan(0.01);
      expect((h * w) / 784).toBeLessThan(0.37);
      expect(h / w).toBeGreaterThan(0.2);
      expect(h / w).toBeLessThan(4.5);
    }
    expect(drawn).toBeGreaterThan(450);
  });

  it('fills one rectangle per image with noise in [0, 1] and leaves every other pixel alone', () => {
    const x = fmnist(8);
    const y = randomErasing(x, new Rng(3), { p: 1 });
    const [a, b] = [x.dataSync(), y.dataSync()];
    let erasedImages = 0;
    for (let i = 0; i < 8; i++) {
      const changed: Array<[number, number]> = [];
      for (let p = 0; p < 784; p++) {
        const k = i * 784 + p;
        if (a[k] !== b[k]) changed.push([Math.floor(p / 28), p % 28]);
        expect(b[k]).toBeGreaterThanOrEqual(0);
        expect(b[k]).toBeLessThanOrEqual(1);
      }
      if (changed.length === 0) continue;
      erasedImages++;
      // The changed pixels lie in one rectangle of at most 37% of the image.
      const rows = changed.map(([r]) => r);
      const cols = changed.map(([, c]) => c);
      const box = (Math.max(...rows) - Math.min(...rows) + 1) * (Math.max(...cols) - Math.min(...cols) + 1);
      expect(box).toBeLessThanOrEqual(0.37 * 784);
      expect(changed.length).toBe(box); // random floats never equal a pixel's k/255 in practice
    }
    expect(erasedImages).toBeGreaterThanOrEqual(7);
    tf.dispose([x, y]);
  });

  it('p = 0 is the identity and draws nothing (views without erasing stay as they were); p > 0 changes views', () => {
    const x = fmnist(4);
    const rng = new Rng(5);
    const y = randomErasing(x, rng, { p: 0 });
    expect(same(x, y)).toBe(true);
    expect(rng.next()).toBe(new Rng(5).next());
    const [v1] = multiView(x, { views: 1, augment: { blurProb: 0 } }, 9);
    const [v2] = multiView(x, { views: 1, augment: { blurProb: 0, eraseProb: 0.5 } }, 9);
    expect(same(v1, v2)).toBe(false);
    tf.dispose([x, y, v1, v2]);
  });

  it('rejects bad settings', () => {
    const x = fmnist(1);
    expect(() => randomErasing(x, new Rng(1), { p: 2 })).toThrow(/erase probability/);
    expect(() => randomErasing(x, new Rng(1), { scale: [0.1, 1.5] })).toThrow(/erase scale/);
    expect(() => randomErasing(x, new Rng(1), { ratio: [0, 1] })).toThrow(/erase ratio/);
    x.dispose();
  });
});

describe('grid PNG', () => {
  it('writes rows x (1 + views) tiles', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-grid-'));
    const x = fmnist(3);
    const file = path.join(dir, 'grid.png');
    await writeViewGrid(file, [x, ...multiView(x, { views: 2 }, 0)], { padding: 2 });
    const meta = await sharp(file).metadata();
    expect([meta.width, meta.height]).toEqual([3 * 28 + 4 * 2, 3 * 28 + 4 * 2]);
    // The file's extension picks its format.
    const jpeg = path.join(dir, 'grid.jpg');
    await writeViewGrid(jpeg, [x, ...multiView(x, { views: 2 }, 0)], { padding: 2 });
    expect((await sharp(jpeg).metadata()).format).toBe('jpeg');
    expect(meta.format).toBe('png');
  });

  it('the augment command decodes real photos', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-grid-'));
    const file = path.join(dir, 'g.png');
    const photo = path.join(__dirname, '..', 'fixtures', 'photos', 'chelsea.jpg');
    const [rows, cols] = await writeAugmentGrid([photo], { out: file, views: 3, rows: 2, size: 32, channels: 3, seed: 0, augment: {} });
    expect([rows, cols]).toEqual([2, 4]);
    expect((await sharp(file).metadata()).width).toBe(4 * 32 + 5 * 2);
  });
});
