/**
 * The README's main command: serve the shipped model over the bundled demo catalogue. Queries are
 * the test fixtures (other Fashion-MNIST test images than the demo's): the nearest demo item should
 * mostly be of the query's class, clearly more often than with random weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import request from 'supertest';
import { startServer } from '../../src/cli/commands/serve';
import { DEFAULTS, DEMO_CATALOG, PACKAGE_ROOT, SHIPPED_MODEL } from '../../src/config/config';
import { readManifest } from '../../src/model/model-dir';
import { fmnistFixtures, tempDir, TEST_MODEL, testConfig } from '../helpers';

/** Serves `model` over the demo catalogue; the share of fixtures whose nearest item is of their class, and /healthz's model. */
async function nearestClassAccuracy(model: string, workers = DEFAULTS.workers): Promise<{ accuracy: number; served: { id: string; dim: number } }> {
  const srv = await startServer(testConfig(tempDir(), { model, importDir: DEMO_CATALOG, workers }));
  try {
    const served = (await request(srv.server).get('/healthz')).body.model;
    const fixtures = fmnistFixtures();
    let right = 0;
    for (const f of fixtures) {
      const res = await request(srv.server).post('/v1/search').attach('image', f.bytes, 'q.png').field('k', '1');
      expect(res.status).toBe(200);
      if (res.body.results[0].metadata.folder === f.folder) right++;
    }
    return { accuracy: right / fixtures.length, served };
  } finally {
    await srv.stop();
  }
}

describe('the shipped model', () => {
  it('is the default model, with a manifest that says how it was made and how good it is', () => {
    expect(DEFAULTS.model).toBe(SHIPPED_MODEL);
    const m = readManifest(SHIPPED_MODEL);
    expect(m.training).toMatchObject({ method: 'simclr' });
    expect(m.quality).toBeDefined();
    expect(m.input).toMatchObject({ size: 28, channels: 1 });
  });

  it('serves the demo catalogue and finds same-class items, better than random weights', async () => {
    const shipped = (await nearestClassAccuracy(SHIPPED_MODEL)).accuracy;
    const random = (await nearestClassAccuracy(TEST_MODEL)).accuracy;
    expect(shipped).toBeGreaterThan(0.6);
    expect(shipped).toBeGreaterThan(random);
  });
});

describe("the shipped model's near-duplicate threshold", () => {
  // Calibrated with single-pass vectors (whiten.ts); it must also hold when served with flip averaging.
  it.each(['none', 'hflip'] as const)('finds re-encoded copies of catalogue items at its default threshold, and few unrelated items (tta %s)', async (tta) => {
    const srv = await startServer(testConfig(tempDir(), { model: SHIPPED_MODEL, importDir: DEMO_CATALOG, workers: 0, tta }));
    try {
      const api = request(srv.server);
      const health = (await api.get('/healthz')).body.model;
      expect(health.duplicateThreshold).toBe(readManifest(SHIPPED_MODEL).embedding.duplicateThreshold ?? 0.95);
      expect(health.id.endsWith('+hflip')).toBe(tta === 'hflip');
      // 20 demo items (two per class), each added again as a JPEG (quality 70) and as a 4x PNG upscale.
      const sharp = (await import('sharp')).default;
      const folders = fs.readdirSync(DEMO_CATALOG).sort();
      const originals = folders.flatMap((f) => fs.readdirSync(path.join(DEMO_CATALOG, f)).sort().slice(0, 2).map((n) => `${f}/${n}`));
      for (const id of originals) {
        const bytes = fs.readFileSync(path.join(DEMO_CATALOG, id));
        await api.post('/v1/items').query({ id: `${id}.jpg` }).set('content-type', 'image/jpeg').send(await sharp(bytes).jpeg({ quality: 70 }).toBuffer()).expect(201);
        await api.post('/v1/items').query({ id: `${id}.up.png` }).set('content-type', 'image/png').send(await sharp(bytes).resize(112, 112).png().toBuffer()).expect(201);
      }
      let found = 0;
      let unrelated = 0;
      for (const id of originals) {
        const near = (await api.get(`/v1/items/${encodeURIComponent(id)}/duplicates`).query({ k: 50 })).body.near.map((h: { id: string }) => h.id);
        found += [`${id}.jpg`, `${id}.up.png`].filter((c) => near.includes(c)).length;
        unrelated += near.filter((n: string) => !n.startsWith(id)).length;
      }
      // Measured on the default model at its 0.75: 598 of 600 such copies, 2 of 79,800 distinct demo pairs;
      // with flip averaging 600 and 3 (bench/near-duplicates, docs/TRAINING.md).
      expect(found).toBeGreaterThanOrEqual(38);
      expect(unrelated).toBeLessThanOrEqual(4);
    } finally {
      await srv.stop();
    }
  });
});

// Every model directory in models/ ships in the package: each must load as its manifest says (some are
// edited by hand, e.g. to serve the projection) and find same-class items.
const shippedModels = fs.readdirSync(path.join(PACKAGE_ROOT, 'models')).filter((d) => fs.existsSync(path.join(PACKAGE_ROOT, 'models', d, 'manifest.json')));

describe.each(shippedModels)('models/%s', (name) => {
  it('serves the demo catalogue with the embedding its manifest names and finds same-class items', async () => {
    const dir = path.join(PACKAGE_ROOT, 'models', name);
    const m = readManifest(dir);
    expect(m.quality).toBeDefined();
    const { accuracy, served } = await nearestClassAccuracy(dir, 0);
    expect(served.dim).toBe(m.embedding.dim);
    // The id names the served output whenever it is not the network's first (encoder), then flip averaging.
    const tta = m.embedding.tta === 'hflip' ? '+hflip' : '';
    expect(served.id.endsWith('+hflip')).toBe(m.embedding.tta === 'hflip');
    expect(served.id.slice(0, served.id.length - tta.length).endsWith(`:${m.embedding.output}`)).toBe(m.embedding.output !== m.outputs[0]);
    if (m.embedding.output === 'whitened') expect(m.whitening?.fittedOn.images).toBeGreaterThan(0);
    expect(accuracy).toBeGreaterThan(0.6);
  });
});

