/**
 * API keys with scopes, and the middleware that checks them (and the per-key rate limit) before any
 * body is read.
 *
 * Keys file: one JSON object per line, `{"name", "sha256", "scopes": ["read"|"write"], "rateLimit"?,
 * "burst"?}`. Only the sha256 of a key is stored: keys are 256 random bits, so a plain hash cannot be
 * brute-forced and a leaked file grants nothing. `likeness keys create` makes one and prints it once.
 *
 * Scopes: `read` = search, get, list, duplicates, jobs, metrics; `write` = add, delete, ingest, eval
 * (eval reads the whole catalogue, so it is costly like a write). /healthz, /openapi.json and the web
 * page's static files are public (the page's API calls are not).
 * With no keys file the server runs open (local development): no keys, no limits.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import { LikenessError } from '../errors';
import type { Rate, RateLimiter } from './rate-limit';

export const SCOPES = ['read', 'write'] as const;
export type Scope = (typeof SCOPES)[number];

/** Key names: what `keys create --name` accepts and the keys file may hold. */
export const KEY_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

const keyRecordSchema = z
  .object({
    name: z.string().regex(KEY_NAME),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    scopes: z.array(z.enum(SCOPES)).min(1),
    /** Requests per second for this key (overrides the server default; 0 = unlimited). */
    rateLimit: z.number().min(0).optional(),
    burst: z.number().int().min(1).optional(),
    createdAt: z.string().optional(),
  })
  .strict();

export type ApiKeyRecord = z.infer<typeof keyRecordSchema>;

/** A new random key: `lk_` + 43 base64url characters (256 bits). */
export const generateKey = (): string => `lk_${randomBytes(32).toString('base64url')}`;

export const hashKey = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex');

/** Reads a keys file; throws with the line number on a malformed line or a repeated name. */
export function readKeysFile(file: string): ApiKeyRecord[] {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const records: ApiKeyRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new Error(`${file}:${i + 1}: not valid JSON`);
    }
    const result = keyRecordSchema.safeParse(parsed);
    if (!result.success) throw new Error(`${file}:${i + 1}: ${result.error.issues[0].path.join('.')}: ${result.error.issues[0].message}`);
    if (records.some((r) => r.name === result.data.name)) throw new Error(`${file}:${i + 1}: key name '${result.data.name}' is used twice`);
    records.push(result.data);
  });
  return records;
}

/** Appends a record (mode 0600: the file names who may do what). */
export function appendKey(file: string, record: ApiKeyRecord): void {
  if (readKeysFile(file).some((r) => r.name === record.name)) throw new Error(`a key named '${record.name}' already exists in ${file}`);
  fs.appendFileSync(file, `${JSON.stringify(keyRecordSchema.parse(record))}\n`, { mode: 0o600 });
}

/** Rewrites the file without `name`; returns whether it was there. */
export function removeKey(file: string, name: string): boolean {
  const records = readKeysFile(file);
  const kept = records.filter((r) => r.name !== name);
  if (kept.length === records.length) return false;
  fs.writeFileSync(file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''), { mode: 0o600 });
  return true;
}

/** Looks keys up by hash, comparing every stored hash in constant time (no early exit). */
export class KeyRing {
  private readonly digests: Array<{ digest: Buffer; record: ApiKeyRecord }>;

  constructor(records: ApiKeyRecord[]) {
    this.digests = records.map((record) => ({ digest: Buffer.from(record.sha256, 'hex'), record }));
  }

  static fromFile(file: string): KeyRing {
    return new KeyRing(readKeysFile(file));
  }

  get size(): number {
    return this.digests.length;
  }

  find(key: string): ApiKeyRecord | undefined {
    const presented = createHash('sha256').update(key, 'utf8').digest();
    let found: ApiKeyRecord | undefined;
    for (const { digest, record } of this.digests) if (timingSafeEqual(digest, presented)) found = record;
    return found;
  }
}

/** Paths whose GET carries no catalogue data: health, the API description, the web page's static files. */
const isPublic = (method: string, path: string): boolean =>
  (method === 'GET' || method === 'HEAD') && (path === '/healthz' || path === '/openapi.json' || !/^\/(v1|metrics|report)(\/|$)/.test(path));

/** The scope a request needs, from its method and path; anything not listed as read is write (deny by default). */
export function requiredScope(method: string, rawPath: string): Scope | 'public' {
  // Decided on the lower-case path as well as routed case-sensitively (app.ts): two guards, so a
  // router that matches '/V1/...' can never serve it as a public path.
  const path = rawPath.toLowerCase();
  if (isPublic(method, path)) return 'public';
  if (path.startsWith('/v1/eval')) return 'write';
  if (method === 'GET' || method === 'HEAD') return 'read';
  if (method === 'POST' && (path === '/v1/search' || path === '/v1/duplicates')) return 'read';
  return 'write';
}

/** The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
function presentedKey(req: Request): string | undefined {
  const auth = req.headers.authorization;
  if (auth) {
    const m = /^Bearer\s+(\S{1,512})\s*$/i.exec(auth);
    return m ? m[1] : '';
  }
  const header = req.headers['x-api-key'];
  return typeof header === 'string' ? header : undefined;
}

export interface AuthOptions {
  /** undefined: authentication off (no keys file configured). */
  keys: KeyRing | undefined;
  /** Read routes answer requests without a key (rate-limited per client address). */
  openRead: boolean;
  /** Default rate for keys without their own, and for anonymous reads. */
  rate: Rate;
  limiter: RateLimiter;
}

const unauthenticated = (message: string) => new LikenessError(401, 'UNAUTHENTICATED', message);

/** Checks the key and its scope, then takes a rate-limit token. 401 / 403 / 429 (with Retry-After). */
export function authenticate(opts: AuthOptions): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const { keys } = opts;
    if (!keys) return next();
    const scope = requiredScope(req.method, req.path);
    if (scope === 'public') return next();
    const key = presentedKey(req);
    let bucket: string;
    let rate = opts.rate;
    if (key === undefined) {
      if (!(scope === 'read' && opts.openRead)) {
        res.set('WWW-Authenticate', 'Bearer');
        return next(unauthenticated('this route needs an API key: Authorization: Bearer <key>'));
      }
      bucket = `addr:${req.socket.remoteAddress ?? '?'}`;
    } else {
      const record = keys.find(key);
      if (!record) {
        res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
        return next(unauthenticated('the API key is not valid'));
      }
      if (!record.scopes.includes(scope)) {
        return next(new LikenessError(403, 'FORBIDDEN_SCOPE', `key '${record.name}' lacks the '${scope}' scope`, { required: scope }));
      }
      res.locals.apiKey = record.name;
      bucket = `key:${record.name}`;
      if (record.rateLimit !== undefined) rate = { perSecond: record.rateLimit, burst: record.burst ?? Math.max(1, Math.ceil(2 * record.rateLimit)) };
    }
    const wait = opts.limiter.take(bucket, rate);
    if (wait > 0) {
      const seconds = Math.max(1, Math.ceil(wait));
      res.set('Retry-After', String(seconds));
      return next(new LikenessError(429, 'RATE_LIMITED', `rate limit of ${rate.perSecond} requests/s exceeded; retry in ${seconds} s`));
    }
    next();
  };
}
