/** likeness keys create | list | revoke: manage the API keys file that `serve --api-keys-file` reads. */
import { Command, InvalidArgumentError, Option } from 'commander';
import * as fs from 'node:fs';
import { intIn } from '../../config/arg-parsers';
import { envOption } from '../env-option';
import { appendKey, generateKey, hashKey, KEY_NAME, readKeysFile, removeKey, Scope, SCOPES } from '../../server/auth';

const fileOption = () =>
  new Option('--api-keys-file <file>', 'the keys file (created if missing)').env('LIKENESS_API_KEYS_FILE').makeOptionMandatory();

function scopes(value: string): Scope[] {
  const list = value.split(',').map((s) => s.trim());
  for (const s of list) if (!(SCOPES as readonly string[]).includes(s)) throw new InvalidArgumentError(`scopes are ${SCOPES.join(', ')}; got '${s}'`);
  return [...new Set(list)] as Scope[];
}

function keyName(value: string): string {
  if (!KEY_NAME.test(value)) throw new InvalidArgumentError(`a name is 1-64 letters, digits, '.', '_', '@' or '-'; got '${value.slice(0, 80)}'`);
  return value;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`expected a number >= 0, got '${value}'`);
  return n;
}

export function keysCommand(): Command {
  const cmd = new Command('keys').description('create, list and revoke API keys');
  cmd
    .command('create')
    .description('make a key, store its sha256 and print the key once (it cannot be shown again)')
    .addOption(envOption('KEYS', '--name <name>', 'who or what uses the key (letters, digits, . _ @ -)').argParser(keyName).makeOptionMandatory())
    .addOption(envOption('KEYS', '--scopes <list>', 'read, write or read,write').argParser(scopes).makeOptionMandatory())
    .addOption(envOption('KEYS', '--rate-limit <n>', "requests per second for this key (default: the server's --rate-limit; 0 = unlimited)").argParser(positive))
    .addOption(envOption('KEYS', '--burst <n>', 'requests at once after an idle spell').argParser(intIn(1)))
    .addOption(fileOption())
    .action((opts: { name: string; scopes: Scope[]; rateLimit?: number; burst?: number; apiKeysFile: string }) => {
      const key = generateKey();
      appendKey(opts.apiKeysFile, {
        name: opts.name,
        sha256: hashKey(key),
        scopes: opts.scopes,
        ...(opts.rateLimit !== undefined ? { rateLimit: opts.rateLimit } : {}),
        ...(opts.burst !== undefined ? { burst: opts.burst } : {}),
        createdAt: new Date().toISOString(),
      });
      process.stdout.write(`${key}\n`);
      process.stderr.write(`key '${opts.name}' (${opts.scopes.join(',')}) added to ${opts.apiKeysFile}; restart the server to use it\n`);
    });
  cmd
    .command('list')
    .description('names, scopes and limits (never the keys)')
    .addOption(fileOption())
    .action((opts: { apiKeysFile: string }) => {
      if (!fs.existsSync(opts.apiKeysFile)) process.stderr.write(`no keys file at ${opts.apiKeysFile} (keys create makes it)\n`);
      for (const r of readKeysFile(opts.apiKeysFile)) process.stdout.write(`${JSON.stringify({ name: r.name, scopes: r.scopes, rateLimit: r.rateLimit, burst: r.burst, createdAt: r.createdAt })}\n`);
    });
  cmd
    .command('revoke')
    .description('remove a key by name (takes effect when the server restarts)')
    .addOption(envOption('KEYS', '--name <name>', 'the key to remove').makeOptionMandatory())
    .addOption(fileOption())
    .action((opts: { name: string; apiKeysFile: string }) => {
      if (!removeKey(opts.apiKeysFile, opts.name)) throw new Error(`no key named '${opts.name}' in ${opts.apiKeysFile}`);
      process.stderr.write(`key '${opts.name}' removed\n`);
    });
  return cmd;
}
