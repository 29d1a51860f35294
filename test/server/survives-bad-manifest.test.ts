/**
 * A manifest the CSV parser rejects mid-write once ended the whole server process: the parser's
 * error also rejected a promise nobody awaited, and Node 20 exits on an unhandled rejection. Only a
 * separate process shows that (jest keeps its own handlers), so the server runs as a child here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnServer, tempDir } from '../helpers';

describe('a server given a broken CSV manifest', () => {
  it('answers 400 BAD_MANIFEST and keeps running', async () => {
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'titles.csv'), 'path,title\na.png,a 12" boot\n');
    const server = spawnServer({ LIKENESS_DATA_DIR: path.join(root, 'data'), LIKENESS_WORKERS: '0', LIKENESS_INGEST_ROOTS: root });
    try {
      await server.up();
      const res = await fetch(`${server.base}/v1/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ source: { type: 'manifest', path: path.join(root, 'titles.csv') } }),
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BAD_MANIFEST');
      await new Promise((r) => setTimeout(r, 500)); // an unhandled rejection ends the process on the next turns
      expect(server.child.exitCode).toBeNull();
      expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});
