import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ChecksumError, fetchFashionMnist, FASHION_MNIST_FILES } from '../../src/data/fetch';
import { FASHION_MNIST_DIR, readFashionMnist } from '../../src/data/idx';
import { tempDir } from '../helpers';

/** A loopback mirror serving Debian's copy of the files, with optional per-file overrides. */
async function mirror(overrides: Record<string, Buffer | null> = {}): Promise<{ url: string; hits: string[]; close: () => Promise<void> }> {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    const name = path.basename(req.url ?? '');
    hits.push(name);
    const body = name in overrides ? overrides[name] : fs.existsSync(path.join(FASHION_MNIST_DIR, name)) ? fs.readFileSync(path.join(FASHION_MNIST_DIR, name)) : null;
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/gzip' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/files/`, hits, close: () => new Promise((r) => server.close(() => r())) };
}

describe('fetchFashionMnist', () => {
  it('downloads, verifies and skips files already present', async () => {
    const m = await mirror();
    const dir = tempDir();
    try {
      const first = await fetchFashionMnist(dir, m.url);
      expect(first.map((r) => r.state)).toEqual(['downloaded', 'downloaded', 'downloaded', 'downloaded']);
      expect(m.hits).toEqual(FASHION_MNIST_FILES.map((f) => f.name));
      const test = readFashionMnist('test', dir);
      expect(test.count).toBe(10_000);
      const again = await fetchFashionMnist(dir, m.url);
      expect(again.map((r) => r.state)).toEqual(['present', 'present', 'present', 'present']);
      expect(m.hits).toHaveLength(4);
    } finally {
      await m.close();
    }
  });

  it('says why a mirror cannot be reached, and how to do without one', async () => {
    const m = await mirror();
    await m.close(); // its port now refuses connections
    await expect(fetchFashionMnist(tempDir(), m.url)).rejects.toThrow(/^cannot reach http:\/\/127\.0\.0\.1:\d+\/files\/train-images-idx3-ubyte\.gz: ECONNREFUSED .*copy the files into/);
  });

  it('refuses a tampered or missing file and leaves nothing behind for it', async () => {
    const labels = fs.readFileSync(path.join(FASHION_MNIST_DIR, 't10k-labels-idx1-ubyte.gz'));
    const raw = gunzipSync(labels);
    raw[100] ^= 1; // one label changed
    const m = await mirror({ 't10k-labels-idx1-ubyte.gz': gzipSync(raw), 't10k-images-idx3-ubyte.gz': null });
    const dir = tempDir();
    try {
      await expect(fetchFashionMnist(dir, m.url)).rejects.toThrow(/t10k-images-idx3-ubyte.gz: HTTP 404/);
      const tampered = await mirror({ 't10k-labels-idx1-ubyte.gz': gzipSync(raw) });
      try {
        const err = await fetchFashionMnist(dir, tampered.url).catch((e) => e);
        expect(err).toBeInstanceOf(ChecksumError);
        expect(err.message).toMatch(/t10k-labels-idx1-ubyte.gz: checksum mismatch/);
      } finally {
        await tampered.close();
      }
      expect(fs.readdirSync(dir).sort()).toEqual(['t10k-images-idx3-ubyte.gz', 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz']);
      // A corrupt file already on disk is reported, not silently trusted.
      fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte.gz'), 'not gzip');
      await expect(fetchFashionMnist(dir, m.url)).rejects.toThrow(/train-labels-idx1-ubyte.gz: not a gzip file/);
    } finally {
      await m.close();
    }
  });

  it.each([
    // The images file is 47,040,016 bytes decompressed: a 60 MB download cannot be it, gzipped or not.
    ['a download larger than the file can be', Buffer.alloc(60_000_000, 1), /train-images-idx3-ubyte.gz: checksum mismatch \(the download passed/],
    // 64 MiB of zeros in about 64 KiB: inflating stops one byte past the expected size.
    ['a gzip that inflates past the expected size', gzipSync(Buffer.alloc(64 * 1024 * 1024)), /train-images-idx3-ubyte.gz: checksum mismatch \(decompresses to more than 47040016 bytes/],
  ])('stops at %s and writes nothing', async (_, body, message) => {
    const m = await mirror({ 'train-images-idx3-ubyte.gz': body });
    const dir = tempDir();
    try {
      await expect(fetchFashionMnist(dir, m.url)).rejects.toThrow(message);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      await m.close();
    }
  });
});
