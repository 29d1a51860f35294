/**
 * Server-side paths from clients must stay inside operator-configured roots. Both sides are resolved
 * with realpath, so `..` segments and symlinks pointing outside a root are refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { badRequest, LikenessError } from '../errors';

export const forbiddenPath = (p: string) => new LikenessError(403, 'PATH_NOT_ALLOWED', `path '${p.slice(0, 300)}' is outside the allowed ingest roots`);

/**
 * Returns the real path of `p` when it lies inside one of `roots`; `roots` undefined means "any path"
 * (the local CLI, where the user already has the filesystem).
 */
export function resolveAllowed(p: string, roots: string[] | undefined): string {
  if (typeof p !== 'string' || p.length === 0 || p.includes('\0')) throw badRequest('BAD_PATH', 'path must be a non-empty string');
  let real: string;
  try {
    real = fs.realpathSync(path.resolve(p));
  } catch {
    // Refuse outside paths before saying whether they exist: clients must not probe the filesystem.
    if (roots !== undefined && !roots.some((root) => isInside(path.resolve(root), path.resolve(p)))) throw forbiddenPath(p);
    throw badRequest('SOURCE_NOT_FOUND', `'${p.slice(0, 300)}' does not exist`);
  }
  if (roots === undefined) return real;
  for (const root of roots) {
    let realRoot: string;
    try {
      realRoot = fs.realpathSync(root);
    } catch {
      continue;
    }
    if (isInside(realRoot, real)) return real;
  }
  throw forbiddenPath(p);
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
