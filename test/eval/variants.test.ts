import * as fs from 'node:fs';
import * as path from 'node:path';
import { Dataset, subsetDataset } from '../../src/data/dataset';
import { openDataset } from '../../src/data/open';
import { embedDataset, evaluateOffline } from '../../src/eval/offline';
import { embedVariants, evaluateVariants } from '../../src/eval/variants';
import { loadModelDir, outputTwin } from '../../src/model/model-dir';
import { initBackend } from '../../src/runtime/backend';
import { FMNIST_DIR } from '../helpers';

// A trained two-output model (serves its 64-d encoder; its projection is 128-d).
const MODEL = path.join(__dirname, '..', '..', 'models', 'fmnist-supcon-mini');

describe('every output, with and without flip averaging, from one pass of each image and its mirror', () => {
  let all: Dataset;
  let bank: Dataset;
  let queries: Dataset;

  beforeAll(async () => {
    await initBackend('wasm');
    all = await openDataset(FMNIST_DIR, { size: 28, channels: 1 }); // 100 real images, 10 per class
    const half = (odd: number) => Array.from({ length: all.count / 2 }, (_, i) => 2 * i + odd);
    bank = subsetDataset(all, half(0));
    queries = subsetDataset(all, half(1));
  });

  it('gives the vectors the embedder serves for each output and tta', async () => {
    const loaded = await loadModelDir(MODEL, 'none');
    const variants = await embedVariants(all, loaded).finally(() => loaded.model.dispose());
    expect(variants.map((v) => `${v.output}/${v.tta}/${v.dim}`)).toEqual(['encoder/none/64', 'encoder/hflip/64', 'projection/none/128', 'projection/hflip/128']);
    for (const v of variants) {
      const twin = v.output === 'encoder' ? MODEL : await outputTwin(MODEL, v.output);
      const served = await embedDataset(all, twin, 0, 'wasm', v.tta).finally(() => twin !== MODEL && fs.rmSync(twin, { recursive: true }));
      expect(served.dim).toBe(v.dim);
      let worst = 0;
      for (let i = 0; i < v.vectors.length; i++) worst = Math.max(worst, Math.abs(v.vectors[i] - served.vectors[i]));
      expect({ variant: `${v.output}/${v.tta}`, close: worst < 1e-5 }).toEqual({ variant: `${v.output}/${v.tta}`, close: true });
    }
    // Flip averaging changes the vectors (the images are not mirror-symmetric), so the variants differ.
    const [plain, flipped] = variants;
    expect(plain.vectors.some((x, i) => Math.abs(x - flipped.vectors[i]) > 1e-3)).toBe(true);
  });

  it("measures each variant as a separate evaluation of that variant does, and names the best", async () => {
    const opts = { modelDir: MODEL, train: bank, test: queries, k: 20, temperature: 0.1, probe: false };
    const report = await evaluateVariants(opts);
    expect(report.served).toEqual({ output: 'encoder', tta: 'none' });
    expect(report.model).toMatch(/^fmnist-supcon-mini@[0-9a-f]{12}$/);
    expect(report.test).toEqual({ name: queries.name, count: 50 });
    const single = await evaluateOffline({ ...opts, baselines: false, efs: [10], workers: 0, backend: 'wasm', output: 'projection', tta: 'hflip' });
    const variant = report.variants.find((v) => v.output === 'projection' && v.tta === 'hflip')!;
    expect(variant.knn).toEqual(single.results.model.knn);
    expect(variant.retrieval.mapAt10).toBeCloseTo(single.results.model.retrieval.mapAt10, 6);
    expect(variant.knn20.top1).toBeGreaterThan(0.6); // a trained embedding on 10 classes, not noise
    const top = Math.max(...report.variants.map((v) => v.knn.top1));
    expect(report.best.top1).toBe(top);
    expect(report.variants.find((v) => v.output === report.best.output && v.tta === report.best.tta)!.knn.top1).toBe(top);
    // recall@10 and mAP@10 need ten bank images: said before any embedding.
    const tiny = subsetDataset(all, [0, 1, 2, 3, 4, 5, 6, 7]);
    await expect(evaluateVariants({ ...opts, train: tiny })).rejects.toThrow('the bank has 8 images; recall@10 and mAP@10 need at least 10');
  });
});
