/**
 * The direct PNG path must give exactly the pixels of the sharp pipeline it stands in for, and step
 * aside (undefined) for every PNG it does not handle.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp, { PngOptions } from 'sharp';
import { DEMO_CATALOG } from '../../src/config/config';
import { decodeToPixels, decodeWithSharp, DEFAULT_DECODE_LIMITS } from '../../src/images/decode';
import { decodePlainPng, parsePlainPng } from '../../src/images/png-direct';
import type { InputSpec } from '../../src/model/manifest';
import { fmnistFixtures } from '../helpers';

const GREY28: InputSpec = { size: 28, channels: 1, mean: [0.5], std: [0.5], fit: 'contain', background: '#000000' };
const RGB20: InputSpec = { size: 20, channels: 3, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], fit: 'contain', background: '#000000' };

/** Deterministic noise with some smooth areas, so every PNG filter type gets chosen somewhere. */
function pixels(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = i % 97 < 40 ? (i * 3) & 0xff : s >>> 24;
  }
  return out;
}

/** sharp writes 1-channel input as RGB unless told the colour space is b-w. */
const png = (raw: Buffer, size: number, channels: 1 | 3, opts: PngOptions = {}) =>
  sharp(raw, { raw: { width: size, height: size, channels } }).toColourspace(channels === 1 ? 'b-w' : 'srgb').png(opts).toBuffer();

describe('direct PNG decoding', () => {
  it('equals the sharp pipeline on every real catalogue PNG (fixtures and the demo catalogue)', async () => {
    const files = [
      ...fmnistFixtures().map((f) => f.bytes),
      ...(fs.readdirSync(DEMO_CATALOG, { recursive: true }) as string[]).filter((f) => f.endsWith('.png')).map((f) => fs.readFileSync(path.join(DEMO_CATALOG, f))),
    ];
    expect(files.length).toBe(500);
    for (const bytes of files) {
      const parsed = parsePlainPng(bytes);
      expect(parsed).toMatchObject({ width: 28, height: 28, channels: 1 });
      expect(decodePlainPng(parsed!)!.equals(await decodeWithSharp(bytes, GREY28, DEFAULT_DECODE_LIMITS))).toBe(true);
    }
  });

  it('equals sharp for grey and RGB images under every filter choice and compression level', async () => {
    for (const [channels, spec] of [[1, GREY28], [3, RGB20]] as const) {
      for (const [i, opts] of [{ adaptiveFiltering: true }, { adaptiveFiltering: false }, { compressionLevel: 0 }, { compressionLevel: 9, adaptiveFiltering: true }].entries()) {
        const raw = pixels(spec.size * spec.size * channels, 7 + i);
        const bytes = await png(raw, spec.size, channels, opts);
        const direct = decodePlainPng(parsePlainPng(bytes)!);
        expect(direct!.equals(raw)).toBe(true);
        expect((await decodeToPixels(bytes, spec, DEFAULT_DECODE_LIMITS)).equals(await decodeWithSharp(bytes, spec, DEFAULT_DECODE_LIMITS))).toBe(true);
      }
    }
  });

  it('steps aside for PNGs it does not handle, and for damaged ones', async () => {
    const raw = pixels(28 * 28, 3);
    const good = await png(raw, 28, 1);
    const others = [
      await png(raw, 28, 1, { progressive: true }), // interlaced
      await png(raw, 28, 1, { palette: true }),
      await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('grey16').png().toBuffer(), // 16-bit
      await sharp(Buffer.concat([raw, raw]), { raw: { width: 28, height: 28, channels: 2 } }).png().toBuffer(), // grey + alpha
      await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).toColourspace('b-w').withMetadata({ orientation: 6 }).png().toBuffer(), // EXIF
      await sharp(pixels(28 * 28 * 3, 5), { raw: { width: 28, height: 28, channels: 3 } }).withIccProfile('srgb').png().toBuffer(), // iCCP
    ];
    for (const bytes of others) expect(parsePlainPng(bytes)).toBeUndefined();
    const badCrc = Buffer.from(good);
    badCrc[40] ^= 0xff; // inside IDAT
    expect(parsePlainPng(badCrc)).toBeUndefined();
    expect(parsePlainPng(good.subarray(0, good.length - 12))).toBeUndefined(); // no IEND
    expect(parsePlainPng(Buffer.from('not a png at all, just some text padding it out'))).toBeUndefined();
    // Damaged ones still get sharp's error codes.
    await expect(decodeToPixels(badCrc, GREY28, DEFAULT_DECODE_LIMITS)).rejects.toMatchObject({ status: 422, code: 'CORRUPT_IMAGE' });
    // A PNG of another size goes through sharp (resized), not the direct path.
    const big = await png(pixels(56 * 56, 4), 56, 1);
    expect((await decodeToPixels(big, GREY28, DEFAULT_DECODE_LIMITS)).equals(await decodeWithSharp(big, GREY28, DEFAULT_DECODE_LIMITS))).toBe(true);
  });
});
