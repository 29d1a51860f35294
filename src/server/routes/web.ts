/** The web page (web/ at the package root): plain HTML, CSS and JS over the /v1 API, no build step. */
import express, { Router } from 'express';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../config/config';

export const WEB_DIR = path.join(PACKAGE_ROOT, 'web');

export function webRouter(dir = WEB_DIR): Router {
  const router = Router({ caseSensitive: true });
  // Revalidate every time (ETag): the files are small and must change with the server version.
  router.use(express.static(dir, { index: 'index.html', dotfiles: 'deny', cacheControl: true, maxAge: 0, fallthrough: true }));
  return router;
}
