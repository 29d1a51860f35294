/**
 * The evaluation report a person would rather look at than read: an HTML page with PNG pictures.
 *   neighbours.png  one query per class and its 8 nearest bank images, framed green (same label) or red
 *   confusion.png   weighted k-NN confusion matrix heat map
 *   ann-recall.png  HNSW recall@10 against exact search by ef
 *   map.png         2-D UMAP of test embeddings coloured by label
 *   filters.png     first-layer convolution filters; feature-maps.png: that layer's output for one input
 */
import * as tf from '@tensorflow/tfjs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { UMAP } from 'umap-js';
import { Rng } from '../augment/rng';
import type { Dataset } from '../data/dataset';
import { loadModelDir } from '../model/model-dir';
import { pixelsToTensor } from '../images/preprocess';
import { confusionSvg, recallCurveSvg, scatterSvg, svgToPng } from './charts';
import type { Metrics, OfflineReport } from './offline';

const TILE = 56;
const GAP = 6;
const RIGHT = '#2ca02c';
const WRONG = '#d62728';
const QUERY = '#555555';

/** One dataset image as a framed, upscaled tile (PNG buffer). */
async function tile(ds: Dataset, index: number, frame: string): Promise<Buffer> {
  const px = Buffer.from(await ds.fetch([index]));
  const inner = TILE - 6;
  const img = await sharp(px, { raw: { width: ds.size, height: ds.size, channels: ds.channels } }).resize(inner, inner, { kernel: 'nearest' }).png().toBuffer();
  return sharp({ create: { width: TILE, height: TILE, channels: 3, background: frame } })
    .composite([{ input: img, top: 3, left: 3 }])
    .png()
    .toBuffer();
}

async function grid(tiles: Buffer[][], file: string): Promise<void> {
  const rows = tiles.length;
  const cols = Math.max(...tiles.map((r) => r.length));
  const width = cols * (TILE + GAP) + GAP + GAP; // extra gap after the query column
  const height = rows * (TILE + GAP) + GAP;
  const composite = tiles.flatMap((row, r) => row.map((input, c) => ({ input, top: GAP + r * (TILE + GAP), left: GAP + c * (TILE + GAP) + (c > 0 ? GAP : 0) })));
  await sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(composite).png().toFile(file);
}

/** Scales values to 0..255 bytes (min → 0, max → 255). */
function toBytes(values: Float32Array | number[]): Uint8Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  return Uint8Array.from(values, (v) => Math.round(((v - lo) / (hi - lo || 1)) * 255));
}

async function mosaic(images: Array<{ data: Uint8Array; side: number; channels: 1 | 3 }>, perRow: number, tileSide: number, file: string): Promise<void> {
  const tiles = await Promise.all(
    images.map((im) => sharp(Buffer.from(im.data), { raw: { width: im.side, height: im.side, channels: im.channels } }).resize(tileSide, tileSide, { kernel: 'nearest' }).png().toBuffer()),
  );
  const rows = Math.ceil(tiles.length / perRow);
  await sharp({ create: { width: perRow * (tileSide + 4) + 4, height: rows * (tileSide + 4) + 4, channels: 3, background: '#ffffff' } })
    .composite(tiles.map((input, i) => ({ input, left: 4 + (i % perRow) * (tileSide + 4), top: 4 + Math.floor(i / perRow) * (tileSide + 4) })))
    .png()
    .toFile(file);
}

/** First-layer filters and their responses to one image. */
async function firstLayer(modelDir: string, test: Dataset, outDir: string): Promise<boolean> {
  const loaded = await loadModelDir(modelDir);
  try {
    const conv = loaded.model.layers.find((l) => l.getClassName() === 'Conv2D');
    if (!conv) return false;
    const kernel = conv.getWeights()[0]; // [kh, kw, cin, cout]
    const [kh, kw, cin, cout] = kernel.shape;
    const k = await kernel.data();
    const filters = Array.from({ length: cout }, (_, o) => {
      const ch = (cin === 3 ? 3 : 1) as 1 | 3;
      const vals: number[] = [];
      for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let c = 0; c < ch; c++) vals.push(k[((y * kw + x) * cin + c) * cout + o]);
      return { data: toBytes(vals), side: kh, channels: ch };
    });
    await mosaic(filters, 8, 40, path.join(outDir, 'filters.png'));
    // Feature maps: the first activation after that convolution, for the first test image.
    const relu = loaded.model.layers.find((l, i) => i > loaded.model.layers.indexOf(conv) && l.getClassName() === 'ReLU') ?? conv;
    const probe = tf.model({ inputs: loaded.model.inputs, outputs: relu.output as tf.SymbolicTensor });
    const x = pixelsToTensor(await test.fetch([0]), 1, loaded.manifest.input);
    const y = probe.predict(x) as tf.Tensor4D; // [1, H, W, C]
    const [, h, , c] = y.shape;
    const maps = await tf.tidy(() => y.squeeze([0]).transpose([2, 0, 1])).data(); // [C, H, W]
    tf.dispose([x, y]);
    await mosaic(
      Array.from({ length: c }, (_, i) => ({ data: toBytes(maps.subarray(i * h * h, (i + 1) * h * h) as Float32Array), side: h, channels: 1 as const })),
      8,
      TILE,
      path.join(outDir, 'feature-maps.png'),
    );
    return true;
  } finally {
    loaded.model.dispose();
  }
}

const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : `${(100 * x).toFixed(1)}%`);

function metricsTable(results: Record<string, Metrics>): string {
  const names: Record<string, string> = { model: 'this model', rawPixels: 'raw pixels', randomWeights: 'random weights' };
  const rows = Object.entries(results).map(
    ([key, m]) =>
      `<tr><th>${names[key] ?? key}</th><td>${pct(m.knn.top1)}</td><td>${pct(m.knn20.top1)}</td><td>${pct(m.majority.top1)}</td><td>${pct(m.retrieval.recallAt1)}</td><td>${pct(m.retrieval.recallAt10)}</td><td>${pct(m.retrieval.mapAt10)}</td><td>${pct(m.linearProbe)}</td></tr>`,
  );
  return `<table><tr><th></th><th>k-NN top-1 (k=${Object.values(results)[0]?.knn.k}, weighted)</th><th>k-NN top-1 (k=20)</th><th>majority vote</th><th>recall@1</th><th>recall@10</th><th>mAP@10</th><th>linear probe</th></tr>${rows.join('')}</table>`;
}

export interface ReportInputs {
  report: OfflineReport;
  train: Dataset;
  test: Dataset;
  modelDir: string;
  /** Test embeddings [test * dim] for the 2-D map. */
  testVectors: Float32Array;
  dim: number;
  /** Points in the 2-D map (UMAP cost grows with it). */
  mapPoints?: number;
}

export async function writeReport(outDir: string, inp: ReportInputs): Promise<string> {
  fs.mkdirSync(outDir, { recursive: true });
  const { report, train, test } = inp;
  const testLabels = test.labels!;
  const trainLabels = train.labels!;

  // One query per class: the first test image of each class.
  const queries: number[] = [];
  for (let c = 0; c < report.classes.length; c++) {
    const q = testLabels.indexOf(c);
    if (q >= 0) queries.push(q);
  }
  const rows = await Promise.all(
    queries.map(async (q) => [
      await tile(test, q, QUERY),
      ...(await Promise.all(Array.from(report.neighbours!.subarray(q * 10, q * 10 + 8)).map((n) => tile(train, n, trainLabels[n] === testLabels[q] ? RIGHT : WRONG)))),
    ]),
  );
  await grid(rows, path.join(outDir, 'neighbours.png'));
  await svgToPng(confusionSvg(report.results.model.confusion, report.classes), path.join(outDir, 'confusion.png'));
  await svgToPng(recallCurveSvg(report.annRecall), path.join(outDir, 'ann-recall.png'));

  const n = Math.min(inp.mapPoints ?? 2000, test.count);
  const data = Array.from({ length: n }, (_, i) => Array.from(inp.testVectors.subarray(i * inp.dim, (i + 1) * inp.dim)));
  // UMAP's layout is random: a seeded generator makes the report reproducible.
  const rng = new Rng(42);
  const umap = new UMAP({ nComponents: 2, nNeighbors: 15, minDist: 0.1, random: () => rng.next() });
  const points = umap.fit(data) as Array<[number, number]>;
  await svgToPng(scatterSvg(points, testLabels.subarray(0, n), report.classes, `UMAP of ${n} test embeddings, coloured by true class`), path.join(outDir, 'map.png'));
  const hasFilters = await firstLayer(inp.modelDir, test, outDir);

  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Likeness evaluation: ${escapeHtml(report.model)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 10px;text-align:right}th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}figure{margin:1.5em 0}</style></head><body>
<h1>Evaluation of ${escapeHtml(report.model)}</h1>
<p>Bank: ${escapeHtml(report.train.name)} (${report.train.count} images). Queries: ${escapeHtml(report.test.name)} (${report.test.count} images). ${escapeHtml(report.protocol)}.</p>
${metricsTable(report.results)}
<figure><img src="neighbours.png" alt="nearest neighbours"><figcaption>One query per class (grey frame) and its 8 nearest bank images: green = same class, red = another class.</figcaption></figure>
<figure><img src="confusion.png" alt="confusion matrix"><figcaption>Where the weighted k-NN classifier goes wrong.</figcaption></figure>
<figure><img src="map.png" alt="embedding map"><figcaption>Test embeddings laid out in 2-D by UMAP (umap-js); well-separated colours mean classes are far apart in the embedding.</figcaption></figure>
<figure><img src="ann-recall.png" alt="ANN recall"><figcaption>How much the approximate index misses compared with exact search, and how fast it answers.</figcaption></figure>
${hasFilters ? '<figure><img src="filters.png" alt="first-layer filters"><figcaption>First-layer convolution filters (each scaled to its own range).</figcaption></figure><figure><img src="feature-maps.png" alt="feature maps"><figcaption>The first layer\'s activations for the first test image.</figcaption></figure>' : ''}
</body></html>`;
  const file = path.join(outDir, 'index.html');
  fs.writeFileSync(file, html);
  fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify({ ...report, neighbours: undefined, testVectors: undefined }, null, 2));
  return file;
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
