import { execFile } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { FMNIST_DIR, spawnServer, tempDir, TEST_MODEL } from '../helpers';

const run = promisify(execFile);
const BIN = path.join(__dirname, '..', '..', 'bin', 'likeness');

describe('likeness CLI', () => {
  const env = { ...process.env, LIKENESS_MODEL: TEST_MODEL, LIKENESS_BACKEND: 'wasm', LIKENESS_WORKERS: '1' };

  it('indexes a folder, skips unchanged files on a rerun, searches and reports info', async () => {
    const dataDir = tempDir();
    const first = await run(process.execPath, [BIN, 'index', FMNIST_DIR, '--data-dir', dataDir], { env });
    expect(JSON.parse(first.stdout.trim().split('\n').pop()!)).toMatchObject({ status: 'done', total: 100, added: 100, unchanged: 0, duplicates: 0, failed: 0 });
    const again = await run(process.execPath, [BIN, 'index', FMNIST_DIR, '--data-dir', dataDir], { env });
    expect(JSON.parse(again.stdout.trim().split('\n').pop()!)).toMatchObject({ status: 'done', added: 0, unchanged: 100 });

    const query = path.join(FMNIST_DIR, 'trouser');
    const file = (await import('node:fs')).readdirSync(query)[0];
    const search = await run(process.execPath, [BIN, 'search', path.join(query, file), '--data-dir', dataDir, '-k', '3'], { env });
    const result = JSON.parse(search.stdout);
    expect(result.results).toHaveLength(3);
    expect(result.results[0]).toMatchObject({ id: `trouser/${file}`, metadata: { folder: 'trouser' } });
    expect(result.results[0].score).toBeGreaterThan(0.999);
    // Searching with another model than the one that indexed the items, a missing catalogue, a folder.
    const other = path.join(__dirname, '..', '..', 'models', 'fmnist-supcon-mini');
    const wrongModel = await run(process.execPath, [BIN, 'search', path.join(query, file), '--data-dir', dataDir, '--model', other], { env });
    expect(wrongModel.stderr).toMatch(/the catalogue holds 100 items, none embedded by this model \(fmnist-supcon-mini@[0-9a-f]{12}\): search with the --model they were indexed with/);
    const missing = path.join(tempDir(), 'typo');
    await expect(run(process.execPath, [BIN, 'search', path.join(query, file), '--data-dir', missing], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/no catalogue in .*typo: index images first/) });
    expect((await import('node:fs')).existsSync(missing)).toBe(false);
    await expect(run(process.execPath, [BIN, 'search', query, '--data-dir', dataDir], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/cannot read .*trouser: it is a folder; search takes one image file/) });
    const damaged = tempDir();
    (await import('node:fs')).writeFileSync(path.join(damaged, 'catalog.db'), 'not a database, '.repeat(100));
    await expect(run(process.execPath, [BIN, 'search', path.join(query, file), '--data-dir', damaged], { env })).rejects.toMatchObject({
      stderr: expect.stringMatching(/catalog\.db is damaged \(file is not a database\): restore it from a backup/),
    });

    const info = JSON.parse((await run(process.execPath, [BIN, 'info', '--data-dir', dataDir], { env })).stdout);
    expect(info.backend.name).toBe('wasm');
    expect(info.model.name).toBe('random-mini');
    expect(info.catalog).toMatchObject({ exists: true, items: 100, itemsForModel: 100 });
  });

  it('refuses an image, a gzip archive and a CSV with a stray quote as index sources with one clear line, and says when a folder has no images', async () => {
    const dir = tempDir();
    const fs = await import('node:fs');
    const csv = path.join(dir, 'titles.csv');
    fs.writeFileSync(csv, 'path,title\na.png,a 12" boot\n');
    const tgz = path.join(dir, 'images.tar.gz');
    fs.writeFileSync(tgz, (await import('node:zlib')).gzipSync(Buffer.alloc(1024)));
    const image = path.join(FMNIST_DIR, 'bag', fs.readdirSync(path.join(FMNIST_DIR, 'bag'))[0]);
    const dataDir = path.join(dir, 'data');
    for (const [source, message] of [
      [image, /is an image, not a manifest: index a folder of images, a manifest \(\.csv, \.jsonl\) or a \.tar archive/],
      [tgz, /is compressed: archives are read as plain \.tar; unpack it first/],
      [csv, /titles\.csv is not valid CSV: Invalid Opening Quote/],
    ] as const) {
      const err = await run(process.execPath, [BIN, 'index', source, '--data-dir', dataDir], { env }).catch((e) => e);
      expect({ source, code: err.code, stderr: err.stderr }).toMatchObject({ source, code: 1, stderr: expect.stringMatching(message) });
      expect(err.stderr).not.toMatch(/\n\s+at /); // one line, no stack trace
    }
    const typoData = path.join(dir, 'typo-data');
    await expect(run(process.execPath, [BIN, 'index', path.join(dir, 'no-such-folder'), '--data-dir', typoData], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/no-such-folder: no such file or folder/) });
    expect(fs.existsSync(typoData)).toBe(false);
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const none = await run(process.execPath, [BIN, 'index', empty, '--data-dir', dataDir], { env });
    expect(none.stderr).toMatch(/no images found in .*empty \(folder\); nothing was indexed/);
    await expect(run(process.execPath, [BIN, 'index', csv, '--server', 'http://127.0.0.1:9'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/cannot reach http:\/\/127\.0\.0\.1:9\/v1\/ingest: .*--server/) });
    await expect(run(process.execPath, [BIN, 'index', csv, '--server', 'localhost:8080'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/--server <url>' argument 'localhost:8080' is invalid. expected an http:\/\/ or https:\/\/ URL/) });
  });

  it('evaluates a model on Fashion-MNIST next to raw-pixel and random-weight baselines', async () => {
    const out = path.join(tempDir(), 'eval.json');
    const reportDir = tempDir();
    await run(process.execPath, [BIN, 'eval', '--limit-train', '600', '--limit-test', '100', '--no-probe', '--ef', '10,200', '--out', out, '--report', reportDir], { env });
    const sharp = (await import('sharp')).default;
    for (const png of ['neighbours.png', 'confusion.png', 'ann-recall.png', 'map.png', 'filters.png', 'feature-maps.png']) {
      const meta = await sharp(path.join(reportDir, png)).metadata();
      expect({ png, format: meta.format, big: (meta.width ?? 0) > 100 }).toEqual({ png, format: 'png', big: true });
    }
    const html = (await import('node:fs')).readFileSync(path.join(reportDir, 'index.html'), 'utf8');
    expect(html).toMatch(/<img src="neighbours.png"/);
    expect(html).toMatch(/raw pixels/);
    const report = JSON.parse((await import('node:fs')).readFileSync(out, 'utf8'));
    expect(report.train).toEqual({ name: 'idx:fashion-mnist:train[:600]', count: 600 });
    expect(Object.keys(report.results).sort()).toEqual(['model', 'randomWeights', 'rawPixels']);
    expect(report.results.rawPixels.dim).toBe(784);
    // Raw-pixel k-NN on Fashion-MNIST is far above chance (0.1) even with a 600-image bank.
    expect(report.results.rawPixels.knn20.top1).toBeGreaterThan(0.6);
    for (const m of Object.values(report.results) as Array<{ retrieval: { recallAt10: number; recallAt1: number } }>) {
      expect(m.retrieval.recallAt10).toBeGreaterThanOrEqual(m.retrieval.recallAt1);
    }
    expect(report.annRecall.map((p: { ef: number }) => p.ef)).toEqual([10, 200]);
    expect(report.annRecall[1].recall).toBeGreaterThan(0.95);
  });

  it('evaluates another output of a network than the one it serves (--output)', async () => {
    const model = path.join(__dirname, '..', '..', 'models', 'fmnist-supcon-mini'); // serves its 64-d encoder
    const args = [BIN, 'eval', '--model', model, '--limit-train', '600', '--limit-test', '100', '--no-baselines', '--no-probe', '--ef', '10'];
    const report = JSON.parse((await run(process.execPath, [...args, '--output', 'projection'], { env })).stdout);
    expect(report.output).toBe('projection');
    expect(report.model).toMatch(/^fmnist-supcon-mini@[0-9a-f]{12}:projection$/);
    expect(report.results.model.dim).toBe(128);
    expect(report.results.model.knn20.top1).toBeGreaterThan(0.7); // a trained embedding, not noise
    await expect(run(process.execPath, [...args, '--output', 'logits'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/--output <name>' argument 'logits' is invalid/) });
  });

  it('holds out the last images of the training split as queries (--holdout), never reading the test split', async () => {
    const model = path.join(__dirname, '..', '..', 'models', 'fmnist-supcon-mini');
    // --test names a file that does not exist: with --holdout it must not be opened.
    const args = [BIN, 'eval', '--model', model, '--limit-train', '700', '--holdout', '100', '--test', '/no/such/test', '--no-baselines', '--no-probe', '--ef', '10'];
    const report = JSON.parse((await run(process.execPath, args, { env })).stdout);
    expect(report.train).toEqual({ name: 'idx:fashion-mnist:train[:700][:600]', count: 600 });
    expect(report.test).toEqual({ name: 'idx:fashion-mnist:train[:700][600:]', count: 100 });
    expect(report.results.model.knn20.top1).toBeGreaterThan(0.7); // labels line up with their images
    await expect(run(process.execPath, [...args.slice(0, 7), '700'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/--holdout must be between 1 and 699/) });
    await expect(run(process.execPath, [...args.slice(0, 7), 'ten'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/option '--holdout <n>' argument 'ten' is invalid. not a number: 'ten'/) });
  });

  it('measures every output with and without flip averaging in one run (--variants)', async () => {
    const model = path.join(__dirname, '..', '..', 'models', 'fmnist-supcon-mini');
    const args = [BIN, 'eval', '--model', model, '--limit-train', '700', '--holdout', '100', '--variants', '--no-probe'];
    const done = await run(process.execPath, args, { env });
    const report = JSON.parse(done.stdout);
    expect(report.variants.map((v: { output: string; tta: string }) => `${v.output}/${v.tta}`)).toEqual(['encoder/none', 'encoder/hflip', 'projection/none', 'projection/hflip']);
    expect(report.best.top1).toBe(Math.max(...report.variants.map((v: { knn: { top1: number } }) => v.knn.top1)));
    expect(done.stderr).toMatch(/projection \+ hflip: k-NN top-1 \d+\.\d\d% \(k=200\)/);
    await expect(run(process.execPath, [...args, '--output', 'projection'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/option '--variants \[bool\]' cannot be used with option '--output <name>'/) });
    await expect(run(process.execPath, [...args, '--tta', 'hflip'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/--variants measures every output with and without flip averaging; drop --tta/) });
    // A LIKENESS_TTA exported for serve does not stop it.
    expect(JSON.parse((await run(process.execPath, args, { env: { ...env, LIKENESS_TTA: 'hflip' } })).stdout).variants).toHaveLength(4);
  });

  it('lists options with their environment variables, and rejects bad values clearly', async () => {
    const help = await run(process.execPath, [BIN, 'serve', '--help']);
    expect(help.stdout).toMatch(/--port <n>.*\n?.*env: PORT/);
    expect(help.stdout).toMatch(/LIKENESS_DATA_DIR/);
    await expect(run(process.execPath, [BIN, 'serve', '--port', 'eighty'], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/--port <n>' argument 'eighty' is invalid. not a number/) });
    await expect(run(process.execPath, [BIN, 'info', '--model', tempDir()], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/no manifest.json/) });
    // Counts and temperatures out of range are refused by the option itself, before any work.
    for (const [args, message] of [
      [['eval', '--k', '0'], /--k <n>' argument '0' is invalid. expected an integer from 1/],
      [['eval', '--temperature', '-1'], /--temperature <t>' argument '-1' is invalid. expected a number above 0/],
      [['eval', '--ef', '10,abc'], /--ef <list>' argument '10,abc' is invalid. not a number: 'abc'/],
      [['train', '--data', 'x', '--out', tempDir(), '--epochs', '0'], /--epochs <n>' argument '0' is invalid/],
      [['augment', 'x.png', '--out', 'y.png', '--rows', '-2'], /--rows <n>' argument '-2' is invalid/],
    ] as const) {
      await expect(run(process.execPath, [BIN, ...args], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(message) });
    }
    // An output path eval cannot write is refused before the embedding (which can take an hour): no "embedding" line.
    const refused = await run(process.execPath, [BIN, 'eval', '--out', tempDir()], { env }).catch((e) => e);
    expect(refused.stderr).toMatch(/--out .* is a folder; give a file name/);
    expect(refused.stderr).not.toMatch(/eval: embedding/);
  });

  it('submits an ingest job to a running server with an API key (index --server --api-key)', async () => {
    const dir = tempDir();
    const keys = path.join(dir, 'keys.jsonl');
    const key = (await run(process.execPath, [BIN, 'keys', 'create', '--name', 'loader', '--scopes', 'read,write', '--api-keys-file', keys])).stdout.trim();
    const server = spawnServer({ LIKENESS_DATA_DIR: path.join(dir, 'data'), LIKENESS_WORKERS: '1', LIKENESS_API_KEYS_FILE: keys, LIKENESS_INGEST_ROOTS: FMNIST_DIR });
    try {
      await server.up();
      const folder = path.join(FMNIST_DIR, 'trouser');
      await expect(run(process.execPath, [BIN, 'index', folder, '--server', server.base], { env })).rejects.toMatchObject({ stderr: expect.stringMatching(/UNAUTHENTICATED/) });
      const done = await run(process.execPath, [BIN, 'index', folder, '--server', server.base], { env: { ...env, LIKENESS_API_KEY: key } });
      expect(JSON.parse(done.stdout.trim().split('\n').pop()!)).toMatchObject({ status: 'done', total: 10, added: 10, failed: 0 });
      expect(done.stderr).toMatch(new RegExp(`job [0-9a-f-]{36} on ${server.base}; Ctrl-C stops watching, not the job \\(to stop it: POST ${server.base}/v1/jobs/[0-9a-f-]{36}/cancel\\)`));
    } finally {
      await server.stop();
    }
  });

  it('refuses to open a data dir a server holds, at once; a server killed with -9 leaves no stale lock', async () => {
    const dataDir = tempDir();
    const server = spawnServer({ LIKENESS_DATA_DIR: dataDir, LIKENESS_WORKERS: '1' });
    try {
      await server.up();
      const index = [BIN, 'index', FMNIST_DIR, '--data-dir', dataDir];
      await expect(run(process.execPath, index, { env, timeout: 60_000 })).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/data dir .* is in use by another likeness process/) });
      expect(await server.stop('SIGKILL')).toBeNull();
      const after = await run(process.execPath, index, { env });
      expect(JSON.parse(after.stdout.trim().split('\n').pop()!)).toMatchObject({ status: 'done', added: 100 });
    } finally {
      await server.stop('SIGKILL');
    }
  });

  it('refuses a port that is already taken with exit code 1, instead of exiting 0 with nothing bound', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const args = [BIN, 'serve', '--port', String(port), '--host', '127.0.0.1', '--data-dir', tempDir()];
      await expect(run(process.execPath, args, { env, timeout: 60_000 })).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(new RegExp(`port ${port} on 127.0.0.1 is already in use`)) });
    } finally {
      blocker.close();
    }
  });
});
