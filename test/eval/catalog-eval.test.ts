import request from 'supertest';
import { RunningServer, startServer } from '../../src/cli/commands/serve';
import { fmnistFixtures, tempDir, testConfig } from '../helpers';

describe('quality checks on the live catalogue', () => {
  let srv: RunningServer;
  const fixtures = fmnistFixtures();

  beforeAll(async () => {
    srv = await startServer(testConfig(tempDir()));
    const added = await srv.likeness.service.addMany(
      fixtures.map((f, i) => ({ key: i, id: f.id, image: f.bytes, metadata: i % 10 === 9 ? {} : { folder: f.folder } })),
    );
    expect(added.every((p) => p.outcome?.state === 'added')).toBe(true);
  });
  afterAll(() => srv?.stop());

  it('k-NN and retrieval metrics, leave-one-out over the labelled items', async () => {
    const res = await request(srv.server).post('/v1/eval').send({ labelField: 'folder', k: 20 });
    expect(res.status).toBe(200);
    const r = res.body;
    expect(r).toMatchObject({ labelField: 'folder', items: 90, queries: 90 });
    expect(r.classes).toHaveLength(10);
    for (const report of [r.knn.weighted, r.knn.majority]) {
      expect(report.k).toBe(20);
      expect(report.top1).toBeGreaterThan(0.1); // random weights still beat chance (0.1) on these classes
      expect(report.top5).toBeGreaterThanOrEqual(report.top1);
      expect(report.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(90);
    }
    expect(r.retrieval.map((x: { k: number }) => x.k)).toEqual([1, 10]);
    expect(r.retrieval[0].recallAtK).toBeCloseTo(r.retrieval[0].precisionAtK, 10); // at k=1 they coincide
    // Leave-one-out: recall@1 equals the 1-NN classification accuracy.
    const nn1 = await request(srv.server).post('/v1/eval').send({ labelField: 'folder', k: 1 });
    expect(nn1.body.knn.majority.top1).toBeCloseTo(r.retrieval[0].recallAtK, 10);
  });

  it('samples queries deterministically', async () => {
    const a = await request(srv.server).post('/v1/eval').send({ labelField: 'folder', sample: 30, seed: 7 });
    const b = await request(srv.server).post('/v1/eval').send({ labelField: 'folder', sample: 30, seed: 7 });
    expect(a.body.queries).toBe(30);
    expect(a.body.knn).toEqual(b.body.knn);
  });

  it('ANN recall against exact search rises with ef and reaches 1 on a small catalogue', async () => {
    const res = await request(srv.server).get('/v1/eval/ann-recall').query({ sample: 50, k: 10, ef: '10,50,200' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ items: 100, queries: 50, k: 10 });
    const recalls = res.body.sweep.map((p: { recall: number }) => p.recall);
    expect(recalls[2]).toBe(1);
    expect(recalls[0]).toBeLessThanOrEqual(recalls[2]);
    expect(res.body.sweep.every((p: { queriesPerSecond: number }) => p.queriesPerSecond > 0)).toBe(true);
  });

  it('serves an evaluation report folder at /report/', async () => {
    const dir = tempDir();
    (await import('node:fs')).writeFileSync(`${dir}/index.html`, '<h1>report</h1>');
    const withReport = await startServer(testConfig(tempDir(), { reportDir: dir }));
    try {
      const res = await request(withReport.server).get('/report/');
      expect(res.status).toBe(200);
      expect(res.text).toBe('<h1>report</h1>');
      expect((await request(withReport.server).get('/report/../package.json')).status).toBe(404);
    } finally {
      await withReport.stop();
    }
  });

  it('rejects bad requests with codes', async () => {
    const cases: Array<[object, number, string]> = [
      [{ labelField: 'nope' }, 400, 'NOT_ENOUGH_LABELS'],
      [{ labelField: "x') --" }, 400, 'BAD_LABEL_FIELD'],
      [{ labelField: 'folder', k: 0 }, 400, 'BAD_K'],
      [{ labelField: 'folder', extra: 1 }, 400, 'BAD_EVAL'],
    ];
    for (const [body, status, code] of cases) {
      const res = await request(srv.server).post('/v1/eval').send(body);
      expect({ body, status: res.status, code: res.body.error?.code }).toEqual({ body, status, code });
    }
    expect((await request(srv.server).get('/v1/eval/ann-recall').query({ ef: 'abc' })).body.error.code).toBe('BAD_EVAL');
  });
});
