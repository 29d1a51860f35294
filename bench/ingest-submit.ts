/**
 * What submitting a big ingest job costs the server: the time from POST /v1/ingest to the job being
 * recorded (planning: reading and checking the manifest, writing the plan), and the longest the event
 * loop stood still meanwhile (no search, no /healthz answered for that long). The baseline in the
 * same run is the longest stall of the idle server over the same length of time. Prints one JSON line.
 *
 *   npx tsx bench/ingest-submit.ts [--rows 200000] [--type manifest|folder|tar]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { openLikeness } from '../src/catalog/open';
import { DEFAULTS } from '../src/config/config';
import { tempDir, TEST_MODEL } from '../test/helpers';
import { arg } from './args';

/** Runs `work` while a 1 ms timer measures the event loop; the longest gap between ticks, in ms. */
async function longestStall(work: () => Promise<unknown>): Promise<{ seconds: number; stallMs: number }> {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 1);
  const t0 = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  worst = Math.max(worst, performance.now() - last);
  return { seconds: (performance.now() - t0) / 1000, stallMs: worst };
}

async function main(): Promise<void> {
  const rows = Number(arg('rows', 'BENCH_ROWS', '200000'));
  const type = arg('type', 'BENCH_TYPE', 'manifest') as 'manifest' | 'folder' | 'tar';
  const root = tempDir('likeness-submit-');
  let source = root;
  if (type === 'manifest') {
    // Rows naming files that need not exist: planning checks paths, reading happens later.
    source = path.join(root, 'catalogue.csv');
    const lines = ['path,id,brand,colour'];
    for (let i = 0; i < rows; i++) lines.push(`images/${i % 1000}/p${i}.jpg,sku-${i},brand-${i % 97},colour-${i % 13}`);
    for (let d = 0; d < 1000; d++) fs.mkdirSync(path.join(root, 'images', String(d)), { recursive: true });
    fs.writeFileSync(source, lines.join('\n') + '\n');
  } else {
    // Folders of 1,000 empty .png files (planning lists them, reading happens later); for 'tar', the
    // same tree packed into one archive.
    const tree = type === 'tar' ? tempDir('likeness-submit-tree-') : root;
    for (let d = 0; d < Math.ceil(rows / 1000); d++) {
      fs.mkdirSync(path.join(tree, String(d)));
      for (let i = d * 1000; i < Math.min(rows, (d + 1) * 1000); i++) fs.writeFileSync(path.join(tree, String(d), `p${i}.png`), '');
    }
    if (type === 'tar') {
      source = path.join(root, 'catalogue.tar');
      execFileSync('tar', ['-cf', source, '-C', tree, '.']);
    }
  }
  const config = { ...DEFAULTS, dataDir: tempDir(), model: TEST_MODEL, ingestRoots: [root] };
  const likeness = await openLikeness(config, pino({ level: 'warn' }));
  try {
    await likeness.ingest.stop(); // record the job only: this measures planning, not ingesting
    const submit = await longestStall(() => likeness.ingest.submit({ type, path: source }, { duplicates: 'keep' }));
    const idle = await longestStall(() => new Promise((r) => setTimeout(r, submit.seconds * 1000)));
    console.log(
      JSON.stringify({
        bench: 'ingest-submit',
        type,
        rows,
        submitSeconds: +submit.seconds.toFixed(2),
        longestStallMs: Math.round(submit.stallMs),
        idleLongestStallMs: Math.round(idle.stallMs),
        stallOverIdle: +(submit.stallMs / idle.stallMs).toFixed(1),
      }),
    );
  } finally {
    await likeness.close();
  }
}

void main();
