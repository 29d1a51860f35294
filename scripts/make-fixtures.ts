/**
 * Writes the committed Fashion-MNIST subsets as PNG files (run once; output is committed):
 *   test/fixtures/fashion-mnist/<class>/test-<i>.png  10 per class (test split) for the tests
 *   demo/catalog/<class>/test-<i>.png                 40 more per class for the bundled demo catalogue
 * Source: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist). Usage: npx tsx scripts/make-fixtures.ts
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { FASHION_MNIST_CLASSES, readFashionMnist } from '../src/data/idx';

export const classSlug = (label: number): string => FASHION_MNIST_CLASSES[label].toLowerCase().replace(/[^a-z]+/g, '-');

async function main(): Promise<void> {
  const test = readFashionMnist('test');
  const side = test.height * test.width;
  const targets = [
    { dir: 'test/fixtures/fashion-mnist', perClass: 10 },
    { dir: 'demo/catalog', perClass: 40 },
  ];
  const taken = new Array<number>(10).fill(0);
  let target = 0;
  for (const t of targets) fs.rmSync(t.dir, { recursive: true, force: true });
  for (let i = 0; i < test.count && target < targets.length; i++) {
    const label = test.labels[i];
    const { dir, perClass } = targets[target];
    if (taken[label] >= perClass) continue;
    taken[label]++;
    const out = path.join(dir, classSlug(label), `test-${i}.png`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const pixels = Buffer.from(test.images.subarray(i * side, (i + 1) * side));
    await sharp(pixels, { raw: { width: test.width, height: test.height, channels: 1 } }).toColourspace('b-w').png({ compressionLevel: 9 }).toFile(out);
    if (taken.every((n) => n === perClass)) {
      taken.fill(0);
      target++;
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
