/**
 * How well a model's similarity scores tell copies of an image from other images, and what a
 * near-duplicate threshold catches: each of the first `copies` images of a folder against its JPEG at
 * quality 70, a 4x PNG upscale and a 10% brighter copy, and every pair of distinct images of the
 * folder. Prints one JSON line (counts at the model's default threshold and at 0.95).
 *
 *   npx tsx bench/near-duplicates.ts [--model DIR] [--dir demo/catalog] [--copies 200] [--tta none|hflip]
 *   (env: BENCH_MODEL, BENCH_DIR, BENCH_COPIES, BENCH_TTA; --tta overrides the model's own, as `serve --tta` does)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { DEFAULT_DUPLICATE_THRESHOLD } from '../src/catalog/service';
import { DEFAULT_BATCHING, Embedder } from '../src/embed/embedder';
import { DEFAULT_DECODE_LIMITS } from '../src/images/decode';
import type { TtaMode } from '../src/model/manifest';
import { initBackend } from '../src/runtime/backend';
import { arg } from './args';

type Img = ReturnType<typeof sharp>;
const COPIES: Record<string, (img: Img) => Img> = {
  jpeg70: (img) => img.jpeg({ quality: 70 }),
  upscale4x: (img) => img.resize(112, 112).png(),
  brighter10: (img) => img.modulate({ brightness: 1.1 }).png(),
};

async function main(): Promise<void> {
  const model = arg('model', 'BENCH_MODEL', path.join(__dirname, '..', 'models', 'fmnist-simclr-mini-whitened'));
  const dir = arg('dir', 'BENCH_DIR', path.join(__dirname, '..', 'demo', 'catalog'));
  const copies = Number(arg('copies', 'BENCH_COPIES', '200'));
  const tta = arg('tta', 'BENCH_TTA', '') as TtaMode | '';
  const backend = await initBackend('auto');
  const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /\.(png|jpe?g|webp)$/i.test(f)).sort();
  const embedder = await Embedder.open({ modelDir: model, workers: 0, backend: backend.name, tta: tta || undefined, batching: DEFAULT_BATCHING, decode: DEFAULT_DECODE_LIMITS });
  const threshold = embedder.manifest.embedding.duplicateThreshold ?? DEFAULT_DUPLICATE_THRESHOLD;
  try {
    const bytes = files.map((f) => fs.readFileSync(path.join(dir, f)));
    const vectors = await Promise.all(bytes.map((b) => embedder.embedImage(b)));
    const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);
    const copyScores: number[] = [];
    for (let i = 0; i < Math.min(copies, files.length); i++) {
      for (const make of Object.values(COPIES)) copyScores.push(dot(vectors[i], await embedder.embedImage(await make(sharp(bytes[i])).toBuffer())));
    }
    const pairScores: number[] = [];
    for (let i = 0; i < vectors.length; i++) for (let j = i + 1; j < vectors.length; j++) pairScores.push(dot(vectors[i], vectors[j]));
    const atLeast = (xs: number[], t: number) => xs.filter((x) => x >= t).length;
    const quantile = (xs: number[], q: number) => +[...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))].toFixed(3);
    console.log(
      JSON.stringify({
        bench: 'near-duplicates',
        model: embedder.modelId,
        images: files.length,
        copies: copyScores.length,
        distinctPairs: pairScores.length,
        threshold,
        copiesFound: atLeast(copyScores, threshold),
        distinctPairsAbove: atLeast(pairScores, threshold),
        copiesFoundAt095: atLeast(copyScores, 0.95),
        distinctPairsAbove095: atLeast(pairScores, 0.95),
        copyScoreMin: quantile(copyScores, 0),
        copyScoreMedian: quantile(copyScores, 0.5),
        distinctScoreMedian: quantile(pairScores, 0.5),
        distinctScoreP999: quantile(pairScores, 0.999),
        distinctScoreMax: quantile(pairScores, 1),
      }),
    );
  } finally {
    await embedder.close();
  }
}

void main();
