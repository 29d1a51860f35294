/**
 * Optional download of Fashion-MNIST for machines without Debian's `dataset-fashion-mnist`.
 *
 * Nothing calls this at run time: a user runs `likeness data fetch fashion-mnist` once. Each file is
 * checked in memory and only then written (temporary name, fsync, rename), so an interrupted or
 * tampered download never leaves a file that `idx:fashion-mnist` would read. The mirror is plain
 * HTTP; the checksums are what is trusted, and the sizes they carry cap what a hostile mirror can
 * make the process read or inflate. The check is the sha256 of the decompressed
 * IDX bytes (not of the .gz): mirrors recompress the same data (Debian's .gz files differ byte for
 * byte from Zalando's), while the IDX content is the dataset itself.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '../model/fs-io';

/** Zalando's own mirror, as listed in github.com/zalandoresearch/fashion-mnist. */
export const FASHION_MNIST_MIRROR = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';

/** sha256 and size of each decompressed IDX file (measured on Debian's dataset-fashion-mnist 2020 package). */
export const FASHION_MNIST_FILES: ReadonlyArray<{ name: string; sha256: string; bytes: number }> = [
  { name: 'train-images-idx3-ubyte.gz', sha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888', bytes: 47_040_016 },
  { name: 'train-labels-idx1-ubyte.gz', sha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9', bytes: 60_008 },
  { name: 't10k-images-idx3-ubyte.gz', sha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b', bytes: 7_840_016 },
  { name: 't10k-labels-idx1-ubyte.gz', sha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34', bytes: 10_008 },
];

export class ChecksumError extends Error {}

/** Throws ChecksumError unless `gz` decompresses to the expected IDX bytes. */
export function verifyIdxGz(gz: Buffer, expected: { name: string; sha256: string; bytes: number }): void {
  let raw: Buffer;
  try {
    // One byte over the expected size is enough to know it is wrong: a gzip bomb stops there.
    raw = gunzipSync(gz, { maxOutputLength: expected.bytes + 1 });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new ChecksumError(`${expected.name}: checksum mismatch (decompresses to more than ${expected.bytes} bytes)`);
    throw new ChecksumError(`${expected.name}: not a gzip file (${(err as Error).message})`);
  }
  const sha = createHash('sha256').update(raw).digest('hex');
  if (raw.length !== expected.bytes || sha !== expected.sha256) {
    throw new ChecksumError(`${expected.name}: checksum mismatch (got ${raw.length} bytes, sha256 ${sha}; expected ${expected.bytes} bytes, sha256 ${expected.sha256})`);
  }
}

export interface FetchReport {
  name: string;
  state: 'present' | 'downloaded';
  bytes: number;
}

/**
 * Downloads the four Fashion-MNIST files into `dir` (skipping ones already present and valid).
 * `mirror` is a base URL ending in '/'.
 */
export async function fetchFashionMnist(dir: string, mirror = FASHION_MNIST_MIRROR, log: (line: string) => void = () => {}): Promise<FetchReport[]> {
  fs.mkdirSync(dir, { recursive: true });
  const report: FetchReport[] = [];
  for (const file of FASHION_MNIST_FILES) {
    const target = path.join(dir, file.name);
    if (fs.existsSync(target)) {
      verifyIdxGz(fs.readFileSync(target), file);
      report.push({ name: file.name, state: 'present', bytes: fs.statSync(target).size });
      continue;
    }
    const url = new URL(file.name, mirror).toString();
    log(`downloading ${url}`);
    const res = await fetch(url).catch((err: Error) => {
      throw new Error(`cannot reach ${url}: ${unreachable(err)}; without network, copy the files into ${dir} (they are verified the same way)`);
    });
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    const body = await readCapped(res, maxGzBytes(file.bytes), file.name);
    verifyIdxGz(body, file);
    writeFileAtomic(target, body);
    report.push({ name: file.name, state: 'downloaded', bytes: body.length });
  }
  return report;
}

/**
 * Why fetch() failed, in words: undici only says "fetch failed" and keeps the reason (a refused
 * connection, an unknown host, a bad certificate) in `cause`.
 */
export function unreachable(err: Error): string {
  const cause = err.cause as (Error & { code?: string }) | undefined;
  if (!cause) return err.message;
  return cause.code ? `${cause.code} (${cause.message})` : cause.message;
}

/** gzip never grows data by more than a few bytes per 16 KiB block plus its header: anything larger is not the file. */
function maxGzBytes(rawBytes: number): number {
  return rawBytes + Math.ceil(rawBytes / 1000) + 1024;
}

/** The response body, refused as soon as it passes `limit` bytes (a hostile or broken mirror cannot fill memory). */
async function readCapped(res: Response, limit: number, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    if (total > limit) {
      // Leaving the loop cancels the stream: the rest is never read.
      throw new ChecksumError(`${name}: checksum mismatch (the download passed ${limit} bytes, more than the file can be)`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}
