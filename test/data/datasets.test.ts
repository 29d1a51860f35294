import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { ArrayDataset, DatasetError, materialize, subsetDataset } from '../../src/data/dataset';
import { openImageFolder } from '../../src/data/folder-dataset';
import { openIdx } from '../../src/data/idx-dataset';
import { openManifest, parseManifestText } from '../../src/data/manifest-dataset';
import { openDataset } from '../../src/data/open';

const PHOTOS = path.join(__dirname, '..', 'fixtures', 'photos');
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-data-'));

/** root/<class>/<file> copies of the fixture photos. */
function classFolder(): string {
  const root = tmp();
  const layout: Record<string, string[]> = { cats: ['chelsea.jpg', 'coffee.jpg'], space: ['astronaut.png', 'rocket.jpg'] };
  for (const [cls, files] of Object.entries(layout)) {
    fs.mkdirSync(path.join(root, cls));
    for (const f of files) fs.copyFileSync(path.join(PHOTOS, f), path.join(root, cls, f));
  }
  fs.writeFileSync(path.join(root, 'cats', 'notes.txt'), 'not an image');
  fs.writeFileSync(path.join(root, 'cats', '._chelsea.jpg'), Buffer.from([0, 5, 22, 7, 0, 2, 0, 0])); // a macOS resource fork
  return root;
}

describe('IDX source', () => {
  it('wraps Fashion-MNIST with labels, resizing and channel copies', async () => {
    const ds = await openIdx('idx:fashion-mnist:test', { size: 14, channels: 3 }, 10);
    expect([ds.count, ds.size, ds.channels]).toEqual([10, 14, 3]);
    expect(ds.classes?.[9]).toBe('Ankle boot');
    expect(ds.labels?.[0]).toBe(9); // first test image is an ankle boot
    const px = await ds.fetch([0, 3]);
    expect(px.length).toBe(2 * 14 * 14 * 3);
    expect(px[0]).toBe(px[1]); // grey copied to R, G, B
    await expect(openIdx('idx:fashion-mnist:valid', { size: 28, channels: 1 })).rejects.toThrow(/split must be 'train' or 'test', got 'valid'/);
    await expect(openIdx('idx:nothing', { size: 28, channels: 1 })).rejects.toThrow(/expected idx:fashion-mnist/);
  });
});

describe('image folder source', () => {
  it('labels images by sub-folder, decodes at the model size, skips non-images', async () => {
    const ds = openImageFolder(classFolder(), { size: 24, channels: 1 });
    expect(ds.count).toBe(4);
    expect(ds.classes).toEqual(['cats', 'space']);
    expect(Array.from(ds.labels!)).toEqual([0, 0, 1, 1]);
    const px = await ds.fetch([3, 0]);
    expect(px.length).toBe(2 * 24 * 24);
    expect(await ds.fetch([3])).toEqual(px.subarray(0, 24 * 24)); // cached decode is identical
  });

  it('pads to a square on black (fit contain)', async () => {
    const root = tmp();
    await sharp({ create: { width: 40, height: 20, channels: 3, background: '#ffffff' } }).png().toFile(path.join(root, 'wide.png'));
    const ds = openImageFolder(root, { size: 10, channels: 1 });
    expect(ds.labels).toBeUndefined();
    const px = await ds.fetch([0]);
    expect(px[0]).toBe(0); // top row is padding
    expect(px[5 * 10 + 5]).toBe(255); // middle is the image
  });

  it('gives clear errors for missing, empty and corrupt data', async () => {
    expect(() => openImageFolder('/nonexistent/dir', { size: 8, channels: 1 })).toThrow(/does not exist/);
    expect(() => openImageFolder(tmp(), { size: 8, channels: 1 })).toThrow(/has no images/);
    const root = tmp();
    fs.writeFileSync(path.join(root, 'broken.jpg'), 'definitely not a jpeg');
    // Refused when opened, naming the file, rather than when first fetched (which may be hours into training).
    expect(() => openImageFolder(root, { size: 8, channels: 1 })).toThrow(/1 of 1 files cannot be used: .*broken\.jpg \(not an image in an accepted format\)/);
    // A good header over a damaged body still fails on fetch, with the file named.
    const truncated = tmp();
    fs.writeFileSync(path.join(truncated, 'cut.jpg'), fs.readFileSync(path.join(PHOTOS, 'coffee.jpg')).subarray(0, 300));
    await expect(openImageFolder(truncated, { size: 8, channels: 1 }).fetch([0])).rejects.toThrow(/cannot decode image .*cut\.jpg/);
    await expect(openImageFolder(classFolder(), { size: 8, channels: 1 }).fetch([9])).rejects.toThrow(/index 9 is out of range \[0, 4\)/);
  });
});

describe('manifest source', () => {
  it('reads CSV with quoting, ids and labels; paths relative to the manifest', async () => {
    const root = tmp();
    for (const f of ['chelsea.jpg', 'rocket.jpg', 'coffee.jpg']) fs.copyFileSync(path.join(PHOTOS, f), path.join(root, f));
    const csv = 'path,id,label,title\nchelsea.jpg,c1,cat,"A cat, sitting"\nrocket.jpg,r1,rocket,x\ncoffee.jpg,k1,,"say ""hi"""\n';
    fs.writeFileSync(path.join(root, 'm.csv'), csv);
    const ds = openManifest(path.join(root, 'm.csv'), { size: 16, channels: 3 });
    expect(ds.ids).toEqual(['c1', 'r1', 'k1']);
    expect(ds.classes).toEqual(['cat', 'rocket']);
    expect(Array.from(ds.labels!)).toEqual([0, 1, -1]);
    expect((await ds.fetch([1])).length).toBe(16 * 16 * 3);
  });

  it('parses CSV as the ingest manifests do: a BOM, any header case, quoted fields over several lines', () => {
    const text = '\ufeffPath,ID,Label,Title\r\n"a,b.jpg",x1,cat,"two\nlines"\r\n\r\nc.jpg,,,"say ""hi"""\r\n';
    expect(parseManifestText(text, 'm.csv')).toEqual([
      { path: 'a,b.jpg', id: 'x1', label: 'cat' },
      { path: 'c.jpg', id: undefined, label: undefined },
    ]);
  });

  it('reads JSONL', async () => {
    const root = tmp();
    fs.copyFileSync(path.join(PHOTOS, 'chelsea.jpg'), path.join(root, 'a.jpg'));
    fs.writeFileSync(path.join(root, 'm.jsonl'), '{"path":"a.jpg","label":"cat"}\n\n');
    const ds = await openDataset(path.join(root, 'm.jsonl'), { size: 8, channels: 1 });
    expect(ds.count).toBe(1);
    expect(ds.ids).toEqual(['a.jpg']);
  });

  it('reports malformed manifests with file and line', () => {
    expect(() => parseManifestText('id,label\n1,a\n', 'm.csv')).toThrow(/needs a 'path' column/);
    expect(() => parseManifestText('path,label\na.jpg\n', 'm.csv')).toThrow(/m.csv:2: 1 fields, the header has 2/);
    expect(() => parseManifestText('path,label\n,a\n', 'm.csv')).toThrow(/m.csv:2: empty path/);
    expect(() => parseManifestText('path,label\n"a.jpg,b\n', 'm.csv')).toThrow(/m.csv:\d+: Quote Not Closed/);
    expect(() => parseManifestText('', 'm.csv')).toThrow(/m.csv: empty manifest/);
    expect(() => parseManifestText('{"path": "a.jpg"}\n{oops\n', 'm.jsonl')).toThrow(/m.jsonl:2: not valid JSON/);
    expect(() => parseManifestText('{"id": 3}\n', 'm.jsonl')).toThrow(/m.jsonl:1: each line needs a non-empty string "path"/);
    const root = tmp();
    fs.writeFileSync(path.join(root, 'm.csv'), 'path\nmissing.jpg\n');
    expect(() => openManifest(path.join(root, 'm.csv'), { size: 8, channels: 1 })).toThrow(/1 listed image\(s\) do not exist/);
  });
});

describe('helpers', () => {
  it('subsets, materialises and checks sizes', async () => {
    const ds = new ArrayDataset('a', Uint8Array.from({ length: 4 * 4 }, (_, i) => i), 2, 1, Int32Array.from([5, 6, 7, 8]));
    const sub = subsetDataset(ds, [3, 1]);
    expect(Array.from(sub.labels!)).toEqual([8, 6]);
    expect(Array.from(await sub.fetch([0]))).toEqual([12, 13, 14, 15]);
    expect(Array.from((await materialize(sub)).pixels)).toEqual([12, 13, 14, 15, 4, 5, 6, 7]);
    expect(() => new ArrayDataset('b', new Uint8Array(5), 2, 1)).toThrow(DatasetError);
    await expect(openDataset('/no/such/thing', { size: 8, channels: 1 })).rejects.toThrow(/does not exist/);
  });
});

describe('openDataset limit', () => {
  it('keeps the first n images of every kind of source and says so in the name', async () => {
    const folder = classFolder();
    const whole = await openDataset(folder, { size: 16, channels: 3 });
    const cut = await openDataset(folder, { size: 16, channels: 3, limit: 3 });
    expect(cut).toMatchObject({ name: `${whole.name}[:3]`, count: 3 });
    expect(cut.ids).toEqual(whole.ids!.slice(0, 3));
    expect(Array.from(cut.labels!)).toEqual(Array.from(whole.labels!.slice(0, 3)));
    expect(Buffer.from(await cut.fetch([2])).equals(Buffer.from(await whole.fetch([2])))).toBe(true);
    // A limit at or above the size keeps the source as it is.
    expect((await openDataset(folder, { size: 16, channels: 3, limit: 4 })).name).toBe(whole.name);

    const idx = await openDataset('idx:fashion-mnist:test', { size: 28, channels: 1, limit: 7 });
    expect(idx).toMatchObject({ name: 'idx:fashion-mnist:test[:7]', count: 7 });
    expect(Array.from(idx.labels!)).toEqual([9, 2, 1, 1, 6, 1, 4]); // the test split's first labels

    for (const bad of [0, -2, 1.5, NaN]) await expect(openDataset(folder, { size: 16, channels: 3, limit: bad })).rejects.toThrow(/limit must be a positive integer/);
  });
});
