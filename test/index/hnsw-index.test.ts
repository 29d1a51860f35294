import * as path from 'node:path';
import { Rng } from '../../src/augment/rng';
import { ExactIndex } from '../../src/index/exact-index';
import { HnswIndex } from '../../src/index/hnsw-index';
import { normalize } from '../../src/index/vector-index';
import { tempDir } from '../helpers';

/** Deterministic pseudo-random unit vectors. */
function vectors(n: number, dim: number, seed = 1): Float32Array[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => normalize(Array.from({ length: dim }, () => rng.next() - 0.5)));
}

describe('ExactIndex', () => {
  it('returns exact cosine neighbours, best first, and honours the filter', () => {
    const idx = new ExactIndex(3, 1);
    idx.add(1, normalize([1, 0, 0]));
    idx.add(2, normalize([1, 1, 0]));
    idx.add(3, normalize([0, 1, 0]));
    idx.add(4, normalize([-1, 0, 0]));
    const res = idx.search(normalize([1, 0.1, 0]), 3);
    expect(res.map((r) => r.label)).toEqual([1, 2, 3]);
    expect(res[0].score).toBeCloseTo(1 / Math.sqrt(1.01), 6);
    expect(idx.search(normalize([1, 0, 0]), 2, (l) => l !== 1).map((r) => r.label)).toEqual([2, 3]);
    idx.remove(2);
    expect(idx.size()).toBe(3);
    expect(idx.search(normalize([1, 1, 0]), 10).map((r) => r.label)).toEqual([1, 3, 4]);
  });
});

describe('HnswIndex', () => {
  const dim = 32;
  const data = vectors(3000, dim);
  const queries = vectors(100, dim, 7);

  it('grows past its initial capacity and reaches high recall@10 against exact search', () => {
    const hnsw = HnswIndex.create(dim, { initialCapacity: 16, efSearch: 100 });
    const exact = new ExactIndex(dim);
    data.forEach((v, i) => {
      hnsw.add(i + 1, v);
      exact.add(i + 1, v);
    });
    expect(hnsw.size()).toBe(3000);
    let hits = 0;
    for (const q of queries) {
      const truth = new Set(exact.search(q, 10).map((r) => r.label));
      hits += hnsw.search(q, 10).filter((r) => truth.has(r.label)).length;
    }
    expect(hits / (queries.length * 10)).toBeGreaterThan(0.95);
    // Scores are cosine similarities, consistent with exact search.
    const [best] = hnsw.search(data[42], 1);
    expect(best.label).toBe(43);
    expect(best.score).toBeCloseTo(1, 5);
  });

  it('scores an item against itself as at most 1 (cosine, not a rounded distance)', () => {
    const vs = vectors(300, 128, 9);
    const index = HnswIndex.create(128, { initialCapacity: 300 });
    vs.forEach((v, i) => index.add(i, v));
    const self = vs.map((v, i) => index.search(v, 1)[0]).map((n, i) => ({ same: n.label === i, score: n.score }));
    expect(self.every((s) => s.same)).toBe(true);
    expect(Math.max(...self.map((s) => s.score))).toBeLessThanOrEqual(1);
    expect(Math.min(...self.map((s) => s.score))).toBeGreaterThan(0.9999);
  });

  it('removes labels, reuses their slots once a quarter of a full index is deleted, and never returns them', () => {
    const hnsw = HnswIndex.create(dim, { initialCapacity: 16 });
    data.slice(0, 16).forEach((v, i) => hnsw.add(i + 1, v));
    hnsw.remove(5);
    hnsw.remove(5); // idempotent
    expect(hnsw.has(5)).toBe(false);
    expect(hnsw.search(data[4], 16).map((r) => r.label)).not.toContain(5);
    // One slot of 16 deleted: the full index grows (a plain insert is 7-11x cheaper than a reuse).
    hnsw.add(100, data[100]);
    expect(hnsw.capacity()).toBe(32);
    expect(hnsw.search(data[100], 1)[0].label).toBe(100);
    // Full again with half its slots deleted: new points fill deleted slots while a quarter (8) or more are.
    for (let i = 17; i <= 31; i++) hnsw.add(i, data[i]);
    for (let i = 1; i <= 16; i++) if (i !== 5) hnsw.remove(i);
    expect(hnsw.size()).toBe(16);
    for (let i = 0; i < 9; i++) hnsw.add(200 + i, data[200 + i]);
    expect(hnsw.capacity()).toBe(32);
    expect(hnsw.size()).toBe(25);
    for (let i = 0; i < 9; i++) expect(hnsw.search(data[200 + i], 1)[0].label).toBe(200 + i);
    expect(hnsw.search(data[0], 50).map((r) => r.label).filter((l) => l <= 16)).toEqual([]);
    // 7 deleted left: it grows again.
    hnsw.add(300, data[300]);
    expect(hnsw.capacity()).toBe(64);
    expect(hnsw.search(data[0], 50)).toHaveLength(26); // k larger than the index
  });

  it('saves atomically and loads back the same neighbours; retainOnly drops stale labels', async () => {
    const hnsw = HnswIndex.create(dim);
    data.slice(0, 500).forEach((v, i) => hnsw.add(i + 1, v));
    const file = path.join(tempDir(), 'index.bin');
    await hnsw.save(file);
    const loaded = await HnswIndex.load(file, dim);
    expect(loaded.size()).toBe(500);
    for (const q of queries.slice(0, 10)) expect(loaded.search(q, 5)).toEqual(hnsw.search(q, 5));
    expect(loaded.retainOnly((l) => l <= 250)).toBe(250);
    expect(loaded.size()).toBe(250);
    expect(loaded.search(data[400], 250).every((r) => r.label <= 250)).toBe(true);
    await expect(HnswIndex.load(file, dim + 1)).rejects.toThrow(/dimensions/);
    // A loaded index is full to capacity (hnswlib sizes it to its count): it must still grow, even from empty.
    for (let i = 0; i < 100; i++) loaded.add(1000 + i, data[i]);
    expect(loaded.size()).toBe(350);
    const empty = HnswIndex.create(dim);
    await empty.save(file);
    const reloaded = await HnswIndex.load(file, dim);
    data.slice(0, 20).forEach((v, i) => reloaded.add(i + 1, v));
    expect(reloaded.size()).toBe(20);
  });

  it('keeps deleted labels deleted across a save and load when told which they are', async () => {
    const hnsw = HnswIndex.create(dim);
    data.slice(0, 50).forEach((v, i) => hnsw.add(i + 1, v));
    [3, 7, 7, 20].forEach((l) => hnsw.remove(l));
    expect(hnsw.deletedLabels().sort((a, b) => a - b)).toEqual([3, 7, 20]);
    const file = path.join(tempDir(), 'index.bin');
    await hnsw.save(file);
    // hnswlib's file keeps deleted labels in its id list: without the list they would count as live.
    expect((await HnswIndex.load(file, dim)).size()).toBe(50);
    const loaded = await HnswIndex.load(file, dim, {}, hnsw.deletedLabels());
    expect(loaded.size()).toBe(47);
    expect(loaded.has(7)).toBe(false);
    expect(loaded.search(data[6], 50).map((r) => r.label)).not.toContain(7);
    loaded.add(7, data[6]); // a deleted label can come back
    expect(loaded.search(data[6], 1)[0].label).toBe(7);
    expect(loaded.size()).toBe(48);
  });

  it('brings a deleted label back in its own slot, so reusing slots later cannot lose it', async () => {
    const hnsw = HnswIndex.create(dim, { initialCapacity: 16 });
    data.slice(0, 16).forEach((v, i) => hnsw.add(i + 1, v));
    [2, 4, 6, 8, 10, 12].forEach((l) => hnsw.remove(l));
    hnsw.add(8, data[7]); // back, while the full index would reuse a slot for a new label
    // The first two reuse deleted slots (5, then 4 of 16 deleted), the third grows the index.
    for (let i = 0; i < 3; i++) hnsw.add(100 + i, data[100 + i]);
    expect(hnsw.capacity()).toBe(32);
    expect(hnsw.search(data[7], 1)[0].label).toBe(8);
    hnsw.remove(8); // hnswlib still knows label 8 (it threw 'Label not found' when 8 had taken another slot)
    expect(hnsw.search(data[7], 20).map((r) => r.label)).not.toContain(8);
    const file = path.join(tempDir(), 'index.bin');
    await hnsw.save(file);
    const loaded = await HnswIndex.load(file, dim, {}, hnsw.deletedLabels());
    expect([...loaded.labels()].sort((a, b) => a - b)).toEqual([...hnsw.labels()].sort((a, b) => a - b));
    for (let i = 0; i < 3; i++) expect(loaded.search(data[100 + i], 1)[0].label).toBe(100 + i);
  });
});
