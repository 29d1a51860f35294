/**
 * Hostile and broken inputs, generated (nothing large is committed): damaged files of every accepted
 * format, decompression bombs, odd but valid images, SVG with external references, wrong content
 * types, broken multipart and JSON, bad vectors, ids and metadata, path traversal.
 * Each case names the answer docs/RELIABILITY.md documents for it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import type request from 'supertest';
import { photo } from '../helpers';

export type Agent = ReturnType<typeof request>;

export interface HostileCase {
  name: string;
  send: (api: Agent) => request.Test;
  status: number;
  /** The error code, or undefined for a success or a response Node itself writes (431). */
  code?: string;
}

/** One PNG chunk: length, type, data, CRC over type + data. */
function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A well-formed PNG header declaring width x height grey pixels, with one tiny IDAT (a bomb's shape). */
export function pngDeclaring(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit greyscale, deflate, no filter, no interlace
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([sig, pngChunk('IHDR', ihdr), pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(1024))), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A GIF of `frames` 1x1 frames (each: graphic control extension + image descriptor + 2-bit LZW data). */
export function manyFrameGif(frames: number): Buffer {
  const header = Buffer.from([...Buffer.from('GIF89a', 'latin1'), 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff]);
  const loop = Buffer.from([0x21, 0xff, 0x0b, ...Buffer.from('NETSCAPE2.0', 'latin1'), 3, 1, 0, 0, 0]);
  const frame = Buffer.from([0x21, 0xf9, 4, 0, 1, 0, 0, 0, 0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 1, 0]);
  return Buffer.concat([header, loop, ...new Array<Buffer>(frames).fill(frame), Buffer.from([0x3b])]);
}

/** Inserts JPEG APPn segments right after SOI. */
function withSegments(jpeg: Buffer, segments: Buffer[]): Buffer {
  const parts = segments.map((payload) => {
    const head = Buffer.from([0xff, 0xe1, 0, 0]);
    head.writeUInt16BE(payload.length + 2, 2);
    return Buffer.concat([head, payload]);
  });
  return Buffer.concat([jpeg.subarray(0, 2), ...parts, jpeg.subarray(2)]);
}

/** Rewrites a baseline JPEG's SOF0 dimensions (the header then lies about the size). */
function jpegClaiming(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  const sof = out.indexOf(Buffer.from([0xff, 0xc0]));
  out.writeUInt16BE(height, sof + 5);
  out.writeUInt16BE(width, sof + 7);
  return out;
}

/** Flips bits across the back two thirds (compressed data) of a file. */
function bitFlipped(bytes: Buffer, step = 97): Buffer {
  const out = Buffer.from(bytes);
  for (let i = Math.floor(out.length / 3); i < out.length; i += step) out[i] ^= 0x5a;
  return out;
}

const cut = (b: Buffer, fraction: number) => b.subarray(0, Math.floor(b.length * fraction));

export interface CorpusOptions {
  /** The id of an item the server holds (for search-by-id cases). */
  knownId: string;
  dim: number;
  maxUploadBytes: number;
  /** The server's only ingest root, and a folder outside it. */
  ingestRoot: string;
  outside: string;
}

export async function hostileCorpus(o: CorpusOptions): Promise<HostileCase[]> {
  const base = sharp(photo('chelsea.jpg')).resize(160, 120);
  const f = {
    jpeg: await base.clone().jpeg().toBuffer(),
    png: await base.clone().png().toBuffer(),
    webp: await base.clone().webp().toBuffer(),
    gif: await base.clone().gif().toBuffer(),
    avif: await base.clone().avif().toBuffer(),
    tiff: await base.clone().tiff().toBuffer(),
  };
  const exifSegment = (fill: number) => Buffer.concat([Buffer.from('Exif\0\0II*\0\x08\0\0\0', 'latin1'), Buffer.alloc(65_000, fill)]);
  const svg = (body: string) => Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="64" height="64">${body}</svg>`);
  const xxe = Buffer.from('<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><text>&x;</text></svg>');
  const symlink = path.join(o.ingestRoot, 'escape');
  if (!fs.existsSync(symlink)) fs.symlinkSync(o.outside, symlink, 'dir');
  const badManifest = path.join(o.ingestRoot, 'bad-rows.jsonl');
  fs.writeFileSync(badManifest, '{"path":"a.png","id":"ok"}\n{"path":"b.png","id":"b\\u0000c"}\n');
  const quoteManifest = path.join(o.ingestRoot, 'stray-quote.csv');
  fs.writeFileSync(quoteManifest, 'path,title\na.png,a 12" boot\n');
  const imageAsManifest = path.join(o.ingestRoot, 'picture.png');
  fs.writeFileSync(imageAsManifest, f.png);
  const gzipTar = path.join(o.ingestRoot, 'images.tar.gz');
  fs.writeFileSync(gzipTar, zlib.gzipSync(Buffer.alloc(1024)));
  const twiceManifest = path.join(o.ingestRoot, 'same-id-twice.csv');
  fs.writeFileSync(twiceManifest, 'path,id\na.png,sku-1\nb.png,sku-1\n');
  const upperManifest = path.join(o.ingestRoot, 'upper-case-header.csv');
  fs.writeFileSync(upperManifest, 'Path,ID\na.png,sku-1\n');
  const manifest = (p: string) => (api: Agent) => api.post('/v1/ingest').send({ source: { type: 'manifest', path: p } });

  const upload = (bytes: Buffer, name = 'upload.bin') => (api: Agent) => api.post('/v1/search').attach('image', bytes, name);
  const raw = (type: string, bytes: Buffer | string) => (api: Agent) => api.post('/v1/search').set('content-type', type).send(bytes);
  const json = (body: string) => (api: Agent) => api.post('/v1/search').set('content-type', 'application/json').send(body);
  const add = (id: string, metadata?: string) => (api: Agent) => {
    let t = api.post('/v1/items').field('id', id);
    if (metadata !== undefined) t = t.field('metadata', metadata);
    return t.attach('image', f.png, 'a.png');
  };
  const ingest = (p: string) => (api: Agent) => api.post('/v1/ingest').send({ source: { type: 'folder', path: p } });
  // serialize: superagent would otherwise send a Buffer under a JSON content type as {"type":"Buffer",...}.
  const encoded = (encoding: string, body: Buffer) => (api: Agent) =>
    api
      .post('/v1/search')
      .set('content-type', 'application/json')
      .set('content-encoding', encoding)
      .serialize(() => body as unknown as string)
      .send(body);
  const vector = (items: string[]) => json(`{"vector":[${items.join(',')}]}`);
  const unit = new Array<string>(o.dim).fill('0.1');

  const c = (name: string, send: HostileCase['send'], status: number, code?: string): HostileCase => ({ name, send, status, code });
  return [
    // Empty, truncated and damaged files of each format.
    c('zero-byte file (multipart)', upload(Buffer.alloc(0)), 400, 'EMPTY_IMAGE'),
    c('zero-byte body (image/png)', raw('image/png', Buffer.alloc(0)), 400, 'EMPTY_IMAGE'),
    c('JPEG truncated at 60%', upload(cut(f.jpeg, 0.6)), 422, 'CORRUPT_IMAGE'),
    c('PNG truncated at 60%', upload(cut(f.png, 0.6)), 422, 'CORRUPT_IMAGE'),
    c('WebP truncated at 60%', upload(cut(f.webp, 0.6)), 422, 'CORRUPT_IMAGE'),
    c('GIF truncated at 60%', upload(cut(f.gif, 0.6)), 422, 'CORRUPT_IMAGE'),
    c('AVIF truncated at 60%', upload(cut(f.avif, 0.6)), 422, 'CORRUPT_IMAGE'),
    c('TIFF truncated at 60%', upload(cut(f.tiff, 0.6)), 422, 'CORRUPT_IMAGE'),
    c('JPEG, first 32 bytes only', upload(f.jpeg.subarray(0, 32)), 422, 'CORRUPT_IMAGE'),
    c('PNG, signature and half a header', upload(f.png.subarray(0, 20)), 422, 'CORRUPT_IMAGE'),
    c('PNG with damaged compressed data (CRC mismatch)', upload(bitFlipped(f.png)), 422, 'CORRUPT_IMAGE'),
    c('GIF with damaged LZW data', upload(bitFlipped(f.gif)), 422, 'CORRUPT_IMAGE'),
    c('AVIF with damaged boxes', upload(bitFlipped(f.avif)), 422, 'CORRUPT_IMAGE'),
    c('JPEG with bit flips in the entropy-coded data (libjpeg recovers: decoded)', upload(bitFlipped(f.jpeg)), 200),
    c('JPEG whose header says 0 x 0 pixels', upload(jpegClaiming(f.jpeg, 0, 0)), 422, 'CORRUPT_IMAGE'),
    // Decompression bombs and resource hogs.
    c('PNG declaring 50,000 x 50,000 pixels (2.5 gigapixels, 1 KiB file)', upload(pngDeclaring(50_000, 50_000)), 413, 'IMAGE_TOO_LARGE'),
    c('JPEG declaring 65,500 x 65,500 pixels', upload(jpegClaiming(f.jpeg, 65_500, 65_500)), 413, 'IMAGE_TOO_LARGE'),
    c('GIF with 10,000 frames (only the first is decoded)', upload(manyFrameGif(10_000)), 200),
    c('JPEG with 2.5 MB of EXIF (40 APP1 segments)', upload(withSegments(f.jpeg, Array.from({ length: 40 }, (_, i) => exifSegment(i)))), 200),
    c('JPEG with a malformed EXIF directory (65,535 entries claimed)', upload(withSegments(f.jpeg, [Buffer.concat([Buffer.from('Exif\0\0II*\0\x08\0\0\0\xff\xff', 'latin1'), Buffer.alloc(200, 0xff)])])), 200),
    // Valid but unusual images: converted, not refused.
    c('CMYK JPEG', upload(await base.clone().toColourspace('cmyk').jpeg().toBuffer()), 200),
    c('16-bit RGB PNG', upload(await base.clone().toColourspace('rgb16').png().toBuffer()), 200),
    c('16-bit greyscale TIFF', upload(await base.clone().toColourspace('grey16').tiff().toBuffer()), 200),
    c('fully transparent PNG', upload(await sharp({ create: { width: 32, height: 32, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer()), 200),
    c('1 x 1 pixel PNG', upload(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } }).png().toBuffer()), 200),
    // Formats that can reach outside the server.
    c('SVG with `<image href="http://169.254.169.254/...">`', upload(svg('<image href="http://169.254.169.254/latest/meta-data/" width="64" height="64"/>'), 'x.svg'), 415, 'UNSUPPORTED_FORMAT'),
    c('SVG with `<image xlink:href="file:///etc/passwd">`', upload(svg('<image xlink:href="file:///etc/passwd" width="64" height="64"/>'), 'x.svg'), 415, 'UNSUPPORTED_FORMAT'),
    c('SVG with an XML external entity', upload(xxe, 'x.svg'), 415, 'UNSUPPORTED_FORMAT'),
    c('SVG sent as a raw image/png body', raw('image/png', svg('<rect width="64" height="64"/>')), 415, 'UNSUPPORTED_FORMAT'),
    c('PDF', upload(Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<<>>\n%%EOF'), 'x.pdf'), 415, 'NOT_AN_IMAGE'),
    c('HTML with a script, named .png', upload(Buffer.from('<html><script>alert(1)</script></html>'), 'x.png'), 415, 'NOT_AN_IMAGE'),
    c('64 KiB of random bytes', upload(Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 2654435761) >>> 24))), 415, 'NOT_AN_IMAGE'),
    // Content types.
    c('text/plain body', raw('text/plain', 'hello'), 415, 'UNSUPPORTED_CONTENT_TYPE'),
    c('PNG bytes as application/octet-stream', raw('application/octet-stream', f.png), 415, 'UNSUPPORTED_CONTENT_TYPE'),
    c('no body, no content type', (api) => api.post('/v1/search'), 415, 'UNSUPPORTED_CONTENT_TYPE'),
    c('JSON body to POST /v1/items (multipart or image/* only)', (api) => api.post('/v1/items').send({ id: 'x' }), 415, 'UNSUPPORTED_CONTENT_TYPE'),
    // Multipart.
    c('multipart upload over --max-upload-bytes', upload(Buffer.alloc(o.maxUploadBytes + 1024, 1)), 413, 'UPLOAD_TOO_LARGE'),
    c('raw image/png body over --max-upload-bytes', raw('image/png', Buffer.alloc(o.maxUploadBytes + 1024, 1)), 413, 'UPLOAD_TOO_LARGE'),
    c('multipart cut off before its closing boundary', raw('multipart/form-data; boundary=zzz', '--zzz\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\nabc'), 400, 'BAD_MULTIPART'),
    c('multipart without a boundary parameter', raw('multipart/form-data', 'whatever'), 400, 'BAD_MULTIPART'),
    c('multipart with two files', (api) => api.post('/v1/items').field('id', 'two').attach('image', f.png, 'a.png').attach('image', f.png, 'b.png'), 400, 'BAD_MULTIPART'),
    c('multipart file in an unexpected field', (api) => api.post('/v1/search').attach('picture', f.png, 'a.png'), 400, 'BAD_MULTIPART'),
    c('multipart with 40 form fields', (api) => Array.from({ length: 40 }, (_, i) => i).reduce((t, i) => t.field(`f${i}`, 'x'), api.post('/v1/search')).attach('image', f.png, 'a.png'), 400, 'BAD_MULTIPART'),
    c('multipart form field of 100 KiB', (api) => api.post('/v1/search').field('k', '1'.repeat(100 * 1024)).attach('image', f.png, 'a.png'), 413, 'FIELD_TOO_LARGE'),
    // JSON.
    c('JSON cut short', json('{"id": '), 400, 'BAD_JSON'),
    c('JSON body over 256 KiB', json(`{"id":"${'x'.repeat(300 * 1024)}"}`), 413, 'BODY_TOO_LARGE'),
    c('gzip JSON of 1 KiB that inflates to 10 MiB (the limit counts inflated bytes)', encoded('gzip', zlib.gzipSync(`{"id":"${'x'.repeat(10 * 1024 * 1024)}"}`)), 413, 'BODY_TOO_LARGE'),
    c('gzip-compressed JSON search (decompressed and answered)', encoded('gzip', zlib.gzipSync(`{"vector":[${unit.join(',')}]}`)), 200),
    c('gzip header followed by bytes that do not decompress', encoded('gzip', Buffer.concat([zlib.gzipSync('{"vector":[').subarray(0, 10), Buffer.alloc(64, 0xff)])), 400, 'BAD_BODY'),
    c('JSON in a Content-Encoding the server cannot decode (compress)', encoded('compress', Buffer.from('{"vector":[]}')), 415, 'UNSUPPORTED_ENCODING'),
    c('NaN in a vector (not JSON)', vector([...unit.slice(1), 'NaN']), 400, 'BAD_JSON'),
    c('1e999 (Infinity) in a vector', vector([...unit.slice(1), '1e999']), 400, 'BAD_VECTOR'),
    c('vector of the wrong length', vector(['1', '2', '3']), 400, 'BAD_VECTOR'),
    c('vector of strings', vector(unit.map(() => '"0.1"')), 400, 'BAD_VECTOR'),
    c('all-zero vector', vector(unit.map(() => '0')), 400, 'BAD_VECTOR'),
    c('vector of 100,000 numbers', vector(new Array<string>(100_000).fill('0')), 400, 'BAD_VECTOR'),
    c('unknown field in the search body', json(`{"id":"${o.knownId}","bogus":1}`), 400, 'BAD_QUERY'),
    c('both vector and id', json(`{"id":"${o.knownId}","vector":[1]}`), 400, 'BAD_QUERY'),
    c('search by an unknown id', json('{"id":"no-such-item"}'), 404, 'ITEM_NOT_FOUND'),
    c('"__proto__" key in the search body', json(`{"id":"${o.knownId}","__proto__":{"admin":true}}`), 400, 'BAD_QUERY'),
    c('filter nested 5,000 levels deep', json(`{"id":"${o.knownId}","filter":{"a":${'['.repeat(5000)}${']'.repeat(5000)}}}`), 400, 'BAD_FILTER'),
    c('k = 1e9', json(`{"id":"${o.knownId}","k":1e9}`), 400, 'BAD_K'),
    c('k = 2.5', json(`{"id":"${o.knownId}","k":2.5}`), 400, 'BAD_K'),
    c('k = -1 in a form field', (api) => api.post('/v1/search').field('k', '-1').attach('image', f.png, 'a.png'), 400, 'BAD_K'),
    c('k = "ten" in a form field', (api) => api.post('/v1/search').field('k', 'ten').attach('image', f.png, 'a.png'), 400, 'BAD_K'),
    c('filter form field that is not JSON', (api) => api.post('/v1/search').field('filter', '{oops').attach('image', f.png, 'a.png'), 400, 'BAD_FILTER'),
    c('minScore = "nan" in a form field', (api) => api.post('/v1/search').field('minScore', 'nan').attach('image', f.png, 'a.png'), 400, 'BAD_MIN_SCORE'),
    c('page limit 1,000,000', (api) => api.get('/v1/items').query({ limit: 1_000_000 }), 400, 'BAD_LIMIT'),
    c('forged page cursor', (api) => api.get('/v1/items').query({ cursor: "1' OR '1'='1" }), 400, 'BAD_CURSOR'),
    // Ids and metadata.
    c('item without an id', (api) => api.post('/v1/items').attach('image', f.png, 'a.png'), 400, 'BAD_ID'),
    c('id of 600 characters', add('x'.repeat(600)), 400, 'BAD_ID'),
    c('id of 100,000 characters (over the form field limit)', add('x'.repeat(100_000)), 413, 'FIELD_TOO_LARGE'),
    c('id with control characters', add('a\u0000b\u001b[31m'), 400, 'BAD_ID'),
    c('unicode id (emoji, right-to-left, combining marks)', add('👟 נעל e\u0301té 鞋'), 201),
    c('id "../../etc/passwd" (ids are keys, never paths)', add('../../etc/passwd'), 201),
    c('item path with a lone surrogate (%ED%A0%80)', (api) => api.get('/v1/items/%ED%A0%80'), 400, 'BAD_REQUEST'),
    c('item path with a malformed %-escape', (api) => api.get('/v1/items/%E0%A4%A'), 400, 'BAD_REQUEST'),
    c('request line over 16 KiB (Node answers)', (api) => api.get(`/v1/items/${'x'.repeat(20_000)}`), 431),
    c('metadata of 20 KiB', add('meta-big', JSON.stringify({ blob: 'x'.repeat(20 * 1024) })), 400, 'BAD_METADATA'),
    c('metadata that is an array', add('meta-array', '[1,2]'), 400, 'BAD_METADATA'),
    c('metadata nested 1,001 levels deep (SQLite cannot query it)', add('meta-deep', `{"a":${'['.repeat(1001)}${']'.repeat(1001)}}`), 400, 'BAD_METADATA'),
    c('metadata with a NUL character (PostgreSQL cannot store it)', add('meta-nul', '{"a":"x\\u0000y"}'), 400, 'BAD_METADATA'),
    c('metadata key with a lone surrogate', add('meta-surrogate', '{"\\ud800":1}'), 400, 'BAD_METADATA'),
    c('filter value with a NUL character', json(`{"id":"${o.knownId}","filter":{"folder":"a\\u0000"}}`), 400, 'BAD_FILTER'),
    c('ingest manifest whose row 2 has a NUL in its id (whole job refused)', (api) => api.post('/v1/ingest').send({ source: { type: 'manifest', path: badManifest } }), 400, 'BAD_MANIFEST'),
    c('upper-case route /V1/items (routes are case-sensitive)', (api) => api.get('/V1/items'), 404, 'NOT_FOUND'),
    c('metadata with SQL in keys and values (stored verbatim)', add('meta-sql', JSON.stringify({ "a'); DROP TABLE items;--": "' OR 1=1 --" })), 201),
    c('filter field with SQL (field names are whitelisted)', json(`{"id":"${o.knownId}","filter":{"a') OR 1=1 --":1}}`), 400, 'BAD_FILTER'),
    c('filter value with SQL (bound as a parameter: no match)', json(`{"id":"${o.knownId}","filter":{"folder":"' OR '1'='1"}}`), 200),
    c('unknown route', (api) => api.get('/v2/nothing'), 404, 'NOT_FOUND'),
    c('wrong method on a real route (PUT /v1/search)', (api) => api.put('/v1/search').send({}), 405, 'METHOD_NOT_ALLOWED'),
    c('wrong method on an item (POST /v1/items/{id})', (api) => api.post(`/v1/items/${encodeURIComponent(o.knownId)}`).send({}), 405, 'METHOD_NOT_ALLOWED'),
    c('job id with a NUL byte', (api) => api.get('/v1/jobs/%00'), 404, 'JOB_NOT_FOUND'),
    c('job id that is not a UUID', (api) => api.get("/v1/jobs/1' OR '1'='1"), 404, 'JOB_NOT_FOUND'),
    c('metadata patch that is an array', (api) => api.patch(`/v1/items/${encodeURIComponent(o.knownId)}`).send({ metadata: [1] }), 400, 'BAD_METADATA'),
    c('metadata patch nested 20,000 levels deep', (api) => api.patch(`/v1/items/${encodeURIComponent(o.knownId)}`).set('content-type', 'application/json').send(`{"metadata":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`), 400, 'BAD_METADATA'),
    c('search filter with a __proto__ field (a field like any other: no match)', json(`{"id":"${o.knownId}","filter":{"__proto__":"x"}}`), 200),
    c('metadata patch that would store a NUL character', (api) => api.patch(`/v1/items/${encodeURIComponent(o.knownId)}`).send({ metadata: { a: 'x\u0000y' } }), 400, 'BAD_METADATA'),
    c('cancel of a job id that is not a UUID', (api) => api.post("/v1/jobs/1' OR '1'='1/cancel"), 404, 'JOB_NOT_FOUND'),
    // Server-side paths.
    c('ingest ../ out of the root', ingest(path.join(o.ingestRoot, '..', path.basename(o.outside))), 403, 'PATH_NOT_ALLOWED'),
    c('ingest /etc', ingest('/etc'), 403, 'PATH_NOT_ALLOWED'),
    c('ingest a missing path outside the roots (existence not revealed)', ingest('/nonexistent-likeness-probe'), 403, 'PATH_NOT_ALLOWED'),
    c('ingest a symlink inside the root pointing outside', ingest(symlink), 403, 'PATH_NOT_ALLOWED'),
    c('ingest a path with a NUL byte', ingest(`${o.ingestRoot}/a\u0000b`), 400, 'BAD_PATH'),
    c('ingest a CSV manifest with a stray quote in a field (a 12" boot)', manifest(quoteManifest), 400, 'BAD_MANIFEST'),
    c('ingest an image as a manifest', manifest(imageAsManifest), 400, 'BAD_SOURCE'),
    c('ingest a gzip-compressed tar as a manifest', manifest(gzipTar), 400, 'BAD_SOURCE'),
    c('ingest a manifest with one id on two rows (the second would replace the first)', manifest(twiceManifest), 400, 'BAD_MANIFEST'),
    c('ingest a CSV manifest whose header says Path (named in the error)', manifest(upperManifest), 400, 'BAD_MANIFEST'),
    c('ingest a relative path (resolved against the server\'s working directory otherwise)', ingest('allowed/photos'), 400, 'BAD_PATH'),
    c('ingest a small CSV as a tar (shorter than one block: it read as an empty archive)', (api) => api.post('/v1/ingest').send({ source: { type: 'tar', path: upperManifest } }), 400, 'BAD_ARCHIVE'),
    // A JSON body sent as text/plain (what fetch does with a string) was ignored and the defaults used.
    c('text/plain JSON to POST /v1/duplicates', (api) => api.post('/v1/duplicates').set('content-type', 'text/plain').send('{"threshold":0.99}'), 415, 'UNSUPPORTED_CONTENT_TYPE'),
    c('application/jsonl body to POST /v1/duplicates (not JSON; a prefix match let it through, ignored)', (api) => api.post('/v1/duplicates').set('content-type', 'application/jsonl').send('{"limit":5}'), 415, 'UNSUPPORTED_CONTENT_TYPE'),
    c('POST /v1/duplicates with no body at all (every field has a default)', (api) => api.post('/v1/duplicates'), 200),
    c('text/plain JSON to POST /v1/eval', (api) => api.post('/v1/eval').set('content-type', 'text/plain').send('{"labelField":"folder"}'), 415, 'UNSUPPORTED_CONTENT_TYPE'),
  ];
}
