/**
 * Lists the regular files of an uncompressed tar archive with their byte ranges, so an ingest job can
 * read any entry again after a restart (random access; a gzipped tar would have to be re-read from the
 * start, so only plain .tar is accepted). Handles ustar prefixes, pax `path` records and GNU long names.
 */
import * as fs from 'node:fs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

export interface TarEntry {
  name: string;
  offset: number;
  size: number;
}

const BLOCK = 512;

function field(buf: Buffer, start: number, len: number): string {
  const raw = buf.subarray(start, start + len);
  const end = raw.indexOf(0);
  return raw.subarray(0, end < 0 ? len : end).toString('utf8');
}

function octal(buf: Buffer, start: number, len: number): number {
  if (buf[start] & 0x80) {
    // GNU base-256 for sizes over 8 GiB.
    let n = 0;
    for (let i = start + 1; i < start + len; i++) n = n * 256 + buf[i];
    return n;
  }
  const text = field(buf, start, len).trim();
  const n = parseInt(text || '0', 8);
  if (!Number.isFinite(n)) throw new Error(`bad octal number '${text}' in tar header`);
  return n;
}

function paxPath(data: Buffer): string | undefined {
  // Records: "<len> key=value\n"
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(data.subarray(pos, space).toString(), 10);
    if (!(len > 0)) break;
    const record = data.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (record.slice(0, eq) === 'path') return record.slice(eq + 1);
    pos += len;
  }
  return undefined;
}

/** Headers read between turns of the event loop: a server listing a big archive keeps answering. */
const YIELD_EVERY = 2000;

export async function listTar(file: string): Promise<TarEntry[]> {
  const fd = fs.openSync(file, 'r');
  const entries: TarEntry[] = [];
  let headers = 0;
  try {
    const size = fs.fstatSync(fd).size;
    const header = Buffer.alloc(BLOCK);
    let pos = 0;
    let longName: string | undefined;
    while (pos + BLOCK <= size) {
      if (++headers % YIELD_EVERY === 0) await yieldToEventLoop();
      fs.readSync(fd, header, 0, BLOCK, pos);
      if (header.every((b) => b === 0)) return entries; // end-of-archive marker
      if (field(header, 257, 6) !== 'ustar' && field(header, 257, 5) !== 'ustar') throw new Error(`${file} is not a tar archive (no ustar header at byte ${pos})`);
      const entrySize = octal(header, 124, 12);
      const type = String.fromCharCode(header[156] || 0x30);
      const dataStart = pos + BLOCK;
      if (dataStart + entrySize > size) throw new Error(`${file} is truncated (entry at byte ${pos} runs past the end)`);
      if (type === 'x' || type === 'L') {
        const data = Buffer.alloc(entrySize);
        fs.readSync(fd, data, 0, entrySize, dataStart);
        longName = type === 'x' ? paxPath(data) : field(data, 0, entrySize);
      } else {
        if (type === '0' || type === '\0' || type === '7') {
          const prefix = field(header, 345, 155);
          const name = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
          entries.push({ name, offset: dataStart, size: entrySize });
        }
        longName = undefined;
      }
      pos = dataStart + Math.ceil(entrySize / BLOCK) * BLOCK;
    }
    // Archives are written in whole 512-byte blocks: anything left over is a cut file, or not a tar at all
    // (a 171-byte CSV passed as a tar read as an empty archive).
    if (pos < size) throw new Error(pos === 0 ? `${file} is not a tar archive (${size} bytes, less than one 512-byte block)` : `${file} has ${size - pos} stray bytes after its last entry (a tar archive is whole 512-byte blocks): cut short or appended to`);
  } finally {
    fs.closeSync(fd);
  }
  return entries;
}
