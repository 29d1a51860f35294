/**
 * Re-ingesting a manifest whose metadata changed (a catalogue's nightly price update): the same
 * images under the same ids, every row with a new price. Such rows are updated in place (no decode,
 * no embedding). Baselines in the same run: the first ingest of the manifest (read, decode, embed,
 * commit, index) and a re-ingest with nothing changed (read and hash only). Last, every image is
 * replaced by its mirror image: the index phase of replacing items, against the first ingest's.
 * Prints one JSON line.
 *
 *   npx tsx bench/manifest-update.ts [--images 5000] [--model DIR] [--chunk 256]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import sharp from 'sharp';
import { openLikeness } from '../src/catalog/open';
import { DEFAULTS, SHIPPED_MODEL } from '../src/config/config';
import { readFashionMnist } from '../src/data/idx';
import { tempDir } from '../test/helpers';
import { arg } from './args';

async function main(): Promise<void> {
  const n = Number(arg('images', 'BENCH_IMAGES', '5000'));
  const model = arg('model', 'BENCH_MODEL', SHIPPED_MODEL);
  const chunk = Number(arg('chunk', 'BENCH_CHUNK', '256'));

  // The first n test images as PNG files beside a CSV manifest: path, id, price.
  const dir = tempDir('likeness-bench-manifest-');
  const test = readFashionMnist('test');
  const side = test.height * test.width;
  const writeImages = async (mirror: boolean) => {
    for (let i = 0; i < n; i++) {
      const image = sharp(Buffer.from(test.images.subarray(i * side, (i + 1) * side)), { raw: { width: test.width, height: test.height, channels: 1 } });
      await (mirror ? image.flop() : image).png().toFile(path.join(dir, `${i}.png`));
    }
  };
  await writeImages(false);
  const manifest = path.join(dir, 'items.csv');
  const writeManifest = (price: (i: number) => number) =>
    fs.writeFileSync(manifest, ['path,id,price', ...Array.from({ length: n }, (_, i) => `${i}.png,item-${i},${price(i)}`)].join('\n') + '\n');

  const config = { ...DEFAULTS, dataDir: tempDir(), model, ingestChunk: chunk, snapshotEvery: 0, duplicates: 'keep' as const };
  const likeness = await openLikeness(config, pino({ level: 'warn' }));
  try {
    const tm = likeness.ingest.timings;
    const ingest = async () => {
      const before = { ...tm };
      const t0 = performance.now();
      const job = await likeness.ingest.submit({ type: 'manifest', path: manifest }, { duplicates: 'keep' }, true);
      await likeness.ingest.whenIdle();
      const seconds = (performance.now() - t0) / 1000;
      // Seconds in each pipeline phase during this run (read and decode overlap the embedding).
      const phases = Object.fromEntries(Object.entries(tm).map(([k, v]) => [k, +(v - before[k as keyof typeof tm]).toFixed(2)]));
      return { seconds, phases, job: (await likeness.ingest.view(job.id))! };
    };
    writeManifest((i) => 10 + (i % 90));
    const first = await ingest();
    const unchanged = await ingest();
    writeManifest((i) => 11 + (i % 90));
    const updated = await ingest();
    const check = (await likeness.service.getItem('item-7')).metadata.price;
    // Every image replaced by its mirror image (new bytes, same ids): decoded, embedded and re-indexed.
    await writeImages(true);
    const replaced = await ingest();
    const perS = (r: { seconds: number }) => Math.round(n / r.seconds);
    console.log(
      JSON.stringify({
        bench: 'manifest-update',
        images: n,
        model: likeness.embedder.modelId,
        backend: likeness.backend.name,
        workers: config.workers,
        chunk,
        firstIngest: { seconds: +first.seconds.toFixed(1), imgPerS: perS(first), added: first.job.added, phases: first.phases },
        unchanged: { seconds: +unchanged.seconds.toFixed(1), imgPerS: perS(unchanged), unchanged: unchanged.job.unchanged, phases: unchanged.phases },
        metadataChanged: { seconds: +updated.seconds.toFixed(1), imgPerS: perS(updated), added: updated.job.added, failed: updated.job.failed, priceOfItem7: check, phases: updated.phases },
        bytesChanged: { seconds: +replaced.seconds.toFixed(1), imgPerS: perS(replaced), added: replaced.job.added, phases: replaced.phases },
        replaceIndexOverFirstIndex: +(replaced.phases.index / first.phases.index).toFixed(2),
        metadataChangedOverFirst: +(first.seconds / updated.seconds).toFixed(2),
        metadataChangedOverUnchanged: +(unchanged.seconds / updated.seconds).toFixed(2),
      }),
    );
  } finally {
    await likeness.close();
  }
}

void main();
