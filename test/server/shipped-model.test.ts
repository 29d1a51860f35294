/**
 * The README's main command: serve the shipped model over the bundled demo catalogue. Queries are
 * the test fixtures (other Fashion-MNIST test images than the demo's): the nearest demo item should
 * mostly be of the query's class, clearly more often than with random weights.
 */
import request from 'supertest';
import { startServer } from '../../src/cli/commands/serve';
import { DEFAULTS, DEMO_CATALOG, SHIPPED_MODEL } from '../../src/config/config';
import { readManifest } from '../../src/model/model-dir';
import { fmnistFixtures, tempDir, TEST_MODEL, testConfig } from '../helpers';

async function nearestClassAccuracy(model: string): Promise<number> {
  const srv = await startServer(testConfig(tempDir(), { model, importDir: DEMO_CATALOG, workers: DEFAULTS.workers }));
  try {
    const fixtures = fmnistFixtures();
    let right = 0;
    for (const f of fixtures) {
      const res = await request(srv.server).post('/v1/search').attach('image', f.bytes, 'q.png').field('k', '1');
      expect(res.status).toBe(200);
      if (res.body.results[0].metadata.folder === f.folder) right++;
    }
    return right / fixtures.length;
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
    const shipped = await nearestClassAccuracy(SHIPPED_MODEL);
    const random = await nearestClassAccuracy(TEST_MODEL);
    expect(shipped).toBeGreaterThan(0.6);
    expect(shipped).toBeGreaterThan(random);
  });
});
