/**
 * Server-side paths from clients must stay inside operator-configured roots. Both sides are resolved
 * with realpath, so `..` segments and symlinks pointing outside a root are refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { badRequest, LikenessError } from '../errors';

export const forbiddenPath = (p: string) => new LikenessError(403, 'PATH_NOT_ALLOWED', `path '${p.slice(0, 300)}' is outside the allowed ingest roots`);

/**
 * The allowed roots, resolved once: a manifest of a million rows checks each row against them, so
 * neither the roots nor a folder shared by many missing files is resolved again for every row.
 * `roots` undefined means "any path" (the local CLI, where the user already has the filesystem).
 */
export class AllowedRoots {
  private readonly real: string[] | undefined;
  private readonly folders = new Map<string, boolean>();

  constructor(private readonly roots: string[] | undefined) {
    this.real = roots?.flatMap((root) => {
      try {
        return [fs.realpathSync.native(root)];
      } catch {
        return []; // a root that does not exist allows nothing
      }
    });
  }

  /** The real path of `p` when it lies inside a root. */
  resolve(p: string): string {
    if (typeof p !== 'string' || p.length === 0 || p.includes('\0')) throw badRequest('BAD_PATH', 'path must be a non-empty string');
    let real: string;
    try {
      real = fs.realpathSync.native(path.resolve(p));
    } catch {
      // Refuse outside paths before saying whether they exist: clients must not probe the filesystem.
      if (this.roots !== undefined && !this.roots.some((root) => isInside(path.resolve(root), path.resolve(p)))) throw forbiddenPath(p);
      throw badRequest('SOURCE_NOT_FOUND', `'${p.slice(0, 300)}' does not exist`);
    }
    if (this.allows(real)) return real;
    throw forbiddenPath(p);
  }

  /** Whether a real (already resolved) path lies inside a root. */
  allows(real: string): boolean {
    return this.real === undefined || this.real.some((root) => isInside(root, real));
  }

  /** Like resolve, but a missing file is fine when its folder is allowed (it fails later, as that item's error). */
  check(abs: string): void {
    // existsSync first: a missing file would otherwise cost two thrown errors (stack traces and all).
    if (fs.existsSync(abs)) {
      this.resolve(abs);
    } else {
      if (abs.includes('\0')) throw badRequest('BAD_PATH', 'path must be a non-empty string'); // existsSync says false to these
      const dir = path.dirname(abs);
      let allowed = this.folders.get(dir);
      if (allowed === undefined) {
        try {
          this.resolve(dir);
          allowed = true;
        } catch (e) {
          if ((e as LikenessError).code !== 'SOURCE_NOT_FOUND') allowed = false;
          else throw e;
        }
        this.folders.set(dir, allowed);
      }
      if (!allowed) throw forbiddenPath(abs);
    }
  }
}

function isInside(root: string, p: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}
