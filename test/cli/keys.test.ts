/** likeness keys create | list | revoke, and a server using the file they write. */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { startServer } from '../../src/cli/commands/serve';
import { tempDir, testConfig } from '../helpers';

const run = promisify(execFile);
const BIN = path.join(__dirname, '..', '..', 'bin', 'likeness');

describe('likeness keys', () => {
  it('creates a key printed once, lists names without keys, and revokes', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'keys.jsonl');
    const created = await run(process.execPath, [BIN, 'keys', 'create', '--name', 'shop', '--scopes', 'read', '--api-keys-file', file]);
    const key = created.stdout.trim();
    expect(key).toMatch(/^lk_/);
    expect(fs.readFileSync(file, 'utf8')).not.toContain(key);
    const listed = await run(process.execPath, [BIN, 'keys', 'list'], { env: { ...process.env, LIKENESS_API_KEYS_FILE: file } });
    expect(JSON.parse(listed.stdout)).toMatchObject({ name: 'shop', scopes: ['read'] });
    expect(listed.stdout).not.toContain(key);
    await expect(run(process.execPath, [BIN, 'keys', 'create', '--name', 'x', '--scopes', 'admin', '--api-keys-file', file])).rejects.toThrow(/scopes are read, write/);
    const badName = await run(process.execPath, [BIN, 'keys', 'create', '--name', 'bad name', '--scopes', 'read', '--api-keys-file', file]).catch((e) => e);
    expect(badName.stderr).toMatch(/--name <name>' argument 'bad name' is invalid. a name is 1-64 letters, digits/);
    expect(badName.stderr.split('\n').filter(Boolean)).toHaveLength(1); // one line, not a schema dump
    await expect(run(process.execPath, [BIN, 'keys', 'create', '--name', 'y', '--scopes', 'read', '--burst', '0', '--api-keys-file', file])).rejects.toMatchObject({ stderr: expect.stringMatching(/--burst <n>' argument '0' is invalid/) });
    const none = await run(process.execPath, [BIN, 'keys', 'list', '--api-keys-file', path.join(dir, 'typo.jsonl')]);
    expect(none.stderr).toMatch(/no keys file at .*typo\.jsonl/);

    const srv = await startServer(testConfig(path.join(dir, 'data'), { apiKeysFile: file }));
    try {
      expect((await request(srv.server).get('/v1/items').set('authorization', `Bearer ${key}`)).status).toBe(200);
      expect((await request(srv.server).delete('/v1/items/x').set('authorization', `Bearer ${key}`)).status).toBe(403);
    } finally {
      await srv.stop();
    }

    await run(process.execPath, [BIN, 'keys', 'revoke', '--name', 'shop', '--api-keys-file', file]);
    expect((await run(process.execPath, [BIN, 'keys', 'list', '--api-keys-file', file])).stdout).toBe('');
  });

  it('a malformed keys file stops the server from starting', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'keys.jsonl');
    fs.writeFileSync(file, '{"name": "a", "sha256": "nope", "scopes": ["read"]}\n');
    await expect(startServer(testConfig(path.join(dir, 'data'), { apiKeysFile: file }))).rejects.toThrow(/keys.jsonl:1/);
  });
});
