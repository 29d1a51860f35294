/**
 * Bulk ingest end to end: the Fashion-MNIST training images written out as PNG files, ingested as one
 * folder job (read → decode → embed on all cores → commit → index). In the same run, the embed-only
 * throughput (pre-decoded pixels through the same worker pool) is the baseline the ingest rate is
 * compared with. Decode-only throughput (sharp, concurrent) is measured too: on a machine where
 * decoding and embedding share the same cores, no pipeline beats 1 / (1/decode + 1/embed) (the
 * "serial CPU bound"), so `ingestOverCpuBound` shows how much of the machine the pipeline used. Both
 * baselines are measured before and after the ingest and averaged (the load of a shared machine drifts).
 * Prints one JSON line.
 *
 *   npx tsx bench/ingest.ts [--images 60000] [--model DIR] [--chunk 256]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import pino from 'pino';
import { openLikeness } from '../src/catalog/open';
import { DEFAULTS } from '../src/config/config';
import { readFashionMnist } from '../src/data/idx';
import { tempDir, TEST_MODEL } from '../test/helpers';
import { arg } from './args';

/** Writes the first `n` training images as PNG under `dir/<label>/train-<i>.png` (reused if present). */
async function writePngs(dir: string, n: number): Promise<void> {
  const marker = path.join(dir, `.complete-${n}`);
  if (fs.existsSync(marker)) return;
  const train = readFashionMnist('train');
  const side = train.height * train.width;
  for (let i = 0; i < n; i++) {
    const out = path.join(dir, String(train.labels[i]), `train-${i}.png`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await sharp(Buffer.from(train.images.subarray(i * side, (i + 1) * side)), { raw: { width: train.width, height: train.height, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(out);
  }
  fs.writeFileSync(marker, '');
}

async function main(): Promise<void> {
  const n = Number(arg('images', 'BENCH_IMAGES', '60000'));
  const model = arg('model', 'BENCH_MODEL', TEST_MODEL);
  const chunk = Number(arg('chunk', 'BENCH_CHUNK', '256'));
  const folder = path.join(os.tmpdir(), `likeness-fmnist-train-png-${n}`);
  await writePngs(folder, n);

  const log = pino({ level: 'warn' });
  const config = { ...DEFAULTS, dataDir: tempDir(), model, ingestChunk: chunk, snapshotEvery: 0, duplicates: 'keep' as const };
  const likeness = await openLikeness(config, log);
  try {
    // Baseline: embed only (decoded pixels through the worker pool), on a sample of the same images.
    const sampleFiles = fs.readdirSync(path.join(folder, '0')).slice(0, 2048).map((f) => path.join(folder, '0', f));
    const sampleBytes = sampleFiles.map((f) => fs.readFileSync(f));
    await Promise.all(sampleBytes.slice(0, 256).map((b) => likeness.embedder.decode(b))); // warm-up
    const rate = async (work: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await work();
      return sampleBytes.length / ((performance.now() - t0) / 1000);
    };
    let pixels: Uint8Array[] = [];
    const decodeRate = () => rate(async () => (pixels = await Promise.all(sampleBytes.map((b) => likeness.embedder.decode(b)))));
    const embedRate = () => rate(() => likeness.embedder.embedMany(pixels));
    const decodeBefore = await decodeRate();
    await likeness.embedder.embedMany(pixels.slice(0, 256)); // warm-up
    const embedBefore = await embedRate();

    const rss0 = process.memoryUsage().rss;
    const t = performance.now();
    const job = await likeness.ingest.submit({ type: 'folder', path: folder }, { duplicates: 'keep' }, true);
    await likeness.ingest.whenIdle();
    const seconds = (performance.now() - t) / 1000;
    const done = (await likeness.ingest.view(job.id))!;
    // The baselines again after the ingest: on a shared machine the load drifts, so the mean of
    // before and after is the fairer comparison for a run of several minutes.
    const decodeOnly = (decodeBefore + (await decodeRate())) / 2;
    const embedOnly = (embedBefore + (await embedRate())) / 2;
    const tm = likeness.ingest.timings;
    const phaseTotal = tm.read + tm.decode + tm.embed + tm.commit + tm.index;
    const share = (x: number) => +(x / phaseTotal).toFixed(3);
    console.log(
      JSON.stringify({
        bench: 'ingest',
        images: n,
        model: likeness.embedder.modelId,
        backend: likeness.backend.name,
        workers: config.workers,
        chunk,
        added: done.added,
        failed: done.failed,
        seconds: +seconds.toFixed(1),
        ingestImgPerS: Math.round(n / seconds),
        embedOnlyImgPerS: Math.round(embedOnly),
        embedOnlyBeforeAfter: [Math.round(embedBefore), Math.round(embedOnly * 2 - embedBefore)],
        decodeOnlyImgPerS: Math.round(decodeOnly),
        ingestOverEmbedOnly: +(n / seconds / embedOnly).toFixed(2),
        ingestOverCpuBound: +(n / seconds / (1 / (1 / decodeOnly + 1 / embedOnly))).toFixed(2),
        phaseShare: { read: share(tm.read), decode: share(tm.decode), embed: share(tm.embed), commit: share(tm.commit), index: share(tm.index) },
        rssGrowthMiB: Math.round((process.memoryUsage().rss - rss0) / 2 ** 20),
      }),
    );
  } finally {
    await likeness.close();
  }
}

void main();
