/**
 * Folder listing: each folder is sorted on its own (so a big tree never stalls the server on one
 * sort), and the result must still be the order of sorting all the paths at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listImages } from '../../src/ingest/sources';
import { tempDir } from '../helpers';

describe('listImages', () => {
  it('lists image files depth first in the order of one global sort, skipping other files and symlinks', async () => {
    const root = tempDir('likeness-list-');
    // Names whose order differs between "sort each folder by name" and "sort the full paths":
    // '-' and '.' sort before '/', '0' after it; upper case before lower; non-ASCII last.
    const images = ['a.png', 'a-b.png', 'a0.png', 'a/z.jpg', 'a/b/c.png', 'a-b/x.webp', 'a.b/y.png', 'B.png', 'é.png', 'a/😀.png', 'ab/1.PNG'];
    for (const rel of images) {
      fs.mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
      fs.writeFileSync(path.join(root, rel), '');
    }
    fs.writeFileSync(path.join(root, 'a', 'notes.txt'), '');
    fs.mkdirSync(path.join(root, 'empty'));
    fs.symlinkSync(path.join(root, 'a.png'), path.join(root, 'link.png'));
    fs.symlinkSync(path.join(root, 'a'), path.join(root, 'linked-folder'));

    const listed = await listImages(root);
    expect(listed).toEqual([...images].sort());
    expect(listed.slice(0, 4)).toEqual(['B.png', 'a-b.png', 'a-b/x.webp', 'a.b/y.png']); // not 'a/...' first
  });
});
