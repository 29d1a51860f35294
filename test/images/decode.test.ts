import sharp from 'sharp';
import { deflateSync } from 'node:zlib';
import { decodeToPixels, DEFAULT_DECODE_LIMITS, inspectImage } from '../../src/images/decode';
import { readFashionMnist } from '../../src/data/idx';
import { makeThumbnail } from '../../src/images/thumbnail';
import type { InputSpec } from '../../src/model/manifest';
import { fmnistFixtures, photo } from '../helpers';

const GREY28: InputSpec = { size: 28, channels: 1, mean: [0.5], std: [0.5], fit: 'contain', background: '#000000' };
const RGB32: InputSpec = { size: 32, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], fit: 'cover', background: '#ffffff' };

async function expectCode(p: Promise<unknown>, status: number, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ status, code });
}

/** CRC-32 (PNG chunks); Node 20 has no zlib.crc32. */
function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A valid PNG header declaring width x height, with a tiny IDAT: the classic decompression bomb shape. */
function pngDeclaring(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(1024))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('decodeToPixels', () => {
  const cat = photo('chelsea.jpg');

  it('decodes a Fashion-MNIST PNG to exactly the pixels of the IDX file it came from', async () => {
    // Serving must see what training saw: the PNG round trip may not change a single pixel.
    const test = readFashionMnist('test');
    for (const f of fmnistFixtures().slice(0, 5)) {
      const i = Number(/test-(\d+)\.png$/.exec(f.id)![1]);
      const pixels = await decodeToPixels(f.bytes, GREY28, DEFAULT_DECODE_LIMITS);
      expect(Buffer.compare(pixels, Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)))).toBe(0);
    }
  });

  it.each(['jpeg', 'png', 'webp', 'gif', 'avif', 'tiff'] as const)('decodes a colour photo stored as %s', async (format) => {
    const bytes = await sharp(cat).toFormat(format).toBuffer();
    const rgb = await decodeToPixels(bytes, RGB32, DEFAULT_DECODE_LIMITS);
    const grey = await decodeToPixels(bytes, GREY28, DEFAULT_DECODE_LIMITS);
    expect(rgb.length).toBe(32 * 32 * 3);
    expect(grey.length).toBe(28 * 28);
    // Not blank: a real photo has contrast.
    expect(Math.max(...rgb) - Math.min(...rgb)).toBeGreaterThan(100);
  });

  it('applies EXIF rotation', async () => {
    const upright = await decodeToPixels(await sharp(cat).rotate(90).jpeg().toBuffer(), RGB32, DEFAULT_DECODE_LIMITS);
    // Stored unrotated with orientation 6 ("rotate 90 clockwise to display").
    const tagged = await decodeToPixels(await sharp(cat).jpeg().withMetadata({ orientation: 6 }).toBuffer(), RGB32, DEFAULT_DECODE_LIMITS);
    const untagged = await decodeToPixels(await sharp(cat).jpeg().toBuffer(), RGB32, DEFAULT_DECODE_LIMITS);
    const diff = (a: Buffer, b: Buffer) => a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length;
    expect(diff(tagged, upright)).toBeLessThan(4);
    expect(diff(untagged, upright)).toBeGreaterThan(10);
  });

  it('flattens transparency onto the model background', async () => {
    const transparent = await sharp({ create: { width: 10, height: 10, channels: 4, background: { r: 255, g: 255, b: 255, alpha: 0 } } }).png().toBuffer();
    const onBlack = await decodeToPixels(transparent, GREY28, DEFAULT_DECODE_LIMITS);
    const onWhite = await decodeToPixels(transparent, RGB32, DEFAULT_DECODE_LIMITS);
    expect(Math.max(...onBlack)).toBe(0);
    expect(Math.min(...onWhite)).toBe(255);
  });

  it('takes the first frame of an animated GIF', async () => {
    const frames = await Promise.all(['#ff0000', '#0000ff'].map((c) => sharp({ create: { width: 8, height: 8, channels: 3, background: c } }).raw().toBuffer()));
    const gif = await sharp(Buffer.concat(frames), { raw: { width: 8, height: 16, channels: 3, pageHeight: 8 } }).gif().toBuffer();
    const px = await decodeToPixels(gif, RGB32, DEFAULT_DECODE_LIMITS);
    expect(px[0]).toBeGreaterThan(200); // red first frame
    expect(px[2]).toBeLessThan(50);
  });

  it('converts CMYK and 16-bit images', async () => {
    const cmyk = await sharp(cat).toColourspace('cmyk').jpeg().toBuffer();
    expect((await sharp(cmyk).metadata()).space).toBe('cmyk');
    expect((await decodeToPixels(cmyk, RGB32, DEFAULT_DECODE_LIMITS)).length).toBe(32 * 32 * 3);
    const deep = await sharp(cat).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(deep).metadata()).depth).toBe('ushort');
    const a = await decodeToPixels(deep, RGB32, DEFAULT_DECODE_LIMITS);
    const b = await decodeToPixels(await sharp(cat).png().toBuffer(), RGB32, DEFAULT_DECODE_LIMITS);
    expect(a.reduce((s, v, i) => s + Math.abs(v - b[i]), 0) / a.length).toBeLessThan(3);
  });

  describe('rejects bad input with stable codes', () => {
    it('empty → 400 EMPTY_IMAGE', () => expectCode(decodeToPixels(Buffer.alloc(0), GREY28, DEFAULT_DECODE_LIMITS), 400, 'EMPTY_IMAGE'));
    it('text → 415 NOT_AN_IMAGE', () => expectCode(decodeToPixels(Buffer.from('hello, not an image'), GREY28, DEFAULT_DECODE_LIMITS), 415, 'NOT_AN_IMAGE'));
    // A file of 1-4 bytes read from disk owns its whole ArrayBuffer: sniffing bytes 8-12 once threw a RangeError there.
    it.each([[[0x89]], [[0x89, 0x50, 0x4e]], [[0x52, 0x49, 0x46, 0x46]]])('%j alone in its buffer → 415 NOT_AN_IMAGE', (bytes) =>
      expectCode(decodeToPixels(new Uint8Array(bytes), GREY28, DEFAULT_DECODE_LIMITS), 415, 'NOT_AN_IMAGE'),
    );
    it('truncated JPEG → 422 CORRUPT_IMAGE', () =>
      expectCode(decodeToPixels(cat.subarray(0, Math.floor(cat.length / 2)), GREY28, DEFAULT_DECODE_LIMITS), 422, 'CORRUPT_IMAGE'));
    it('corrupt PNG body → 422 CORRUPT_IMAGE', async () => {
      const png = Buffer.from(photo('astronaut.png'));
      for (let i = 200; i < png.length - 100; i += 97) png[i] ^= 0x5a;
      await expectCode(decodeToPixels(png, GREY28, DEFAULT_DECODE_LIMITS), 422, 'CORRUPT_IMAGE');
    });
    it('50,000 x 50,000 PNG → 413 IMAGE_TOO_LARGE before decoding', async () => {
      const bomb = pngDeclaring(50_000, 50_000);
      expect(bomb.length).toBeLessThan(2000);
      await expectCode(decodeToPixels(bomb, GREY28, DEFAULT_DECODE_LIMITS), 413, 'IMAGE_TOO_LARGE');
    });
    it('SVG → 415 UNSUPPORTED_FORMAT unless enabled', async () => {
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="red"/></svg>');
      await expectCode(decodeToPixels(svg, GREY28, DEFAULT_DECODE_LIMITS), 415, 'UNSUPPORTED_FORMAT');
      await expect(decodeToPixels(svg, RGB32, { ...DEFAULT_DECODE_LIMITS, allowSvg: true })).resolves.toHaveLength(32 * 32 * 3);
    });
    it('16-bit greyscale PNG → the same 8-bit levels, not clipped', async () => {
      const n = 28 * 28;
      const ramp = Uint16Array.from({ length: n }, (_, i) => Math.round((i / (n - 1)) * 65535));
      const png16 = await sharp(ramp, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('grey16').png().toBuffer();
      expect((await sharp(png16).metadata()).depth).toBe('ushort');
      const px = await decodeToPixels(png16, GREY28, DEFAULT_DECODE_LIMITS);
      for (const i of [0, 200, 392, 600, 783]) expect(Math.abs(px[i] - Math.round((i / (n - 1)) * 255))).toBeLessThanOrEqual(1);
    });
    it('thumbnails refuse what decoding refuses (bulk ingest makes them while the bytes are still being checked)', async () => {
      const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300"><rect width="300" height="300" fill="red"/></svg>');
      await expect(makeThumbnail(svg, 128, DEFAULT_DECODE_LIMITS)).rejects.toThrow(/not an image in an accepted format/);
      await expect(makeThumbnail(svg, 128, { ...DEFAULT_DECODE_LIMITS, allowSvg: true })).resolves.toMatchObject({ type: 'image/webp' });
      await expect(makeThumbnail(cat, 128, DEFAULT_DECODE_LIMITS)).resolves.toMatchObject({ type: 'image/webp' });
    });
    it('inspectImage reports the header without decoding', async () => {
      await expect(inspectImage(cat, DEFAULT_DECODE_LIMITS)).resolves.toEqual({ format: 'jpeg', width: 320, height: 213 });
    });
  });
});
