import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/model/fs-io';
import { tempDir } from '../helpers';

describe('writeFileAtomic', () => {
  it('replaces a file whole', () => {
    const file = path.join(tempDir(), 'model.json');
    fs.writeFileSync(file, 'old');
    writeFileAtomic(file, 'new');
    expect(fs.readFileSync(file, 'utf8')).toBe('new');
  });

  it('leaves what was there and no temporary file behind when it fails', () => {
    const dir = tempDir();
    // Renaming over a non-empty directory fails after the data is written.
    const target = path.join(dir, 'weights.bin');
    fs.mkdirSync(path.join(target, 'inside'), { recursive: true });
    expect(() => writeFileAtomic(target, new Uint8Array(1024))).toThrow();
    expect(fs.readdirSync(dir)).toEqual(['weights.bin']);
    expect(fs.readdirSync(target)).toEqual(['inside']);
  });
});
