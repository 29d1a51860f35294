/**
 * Express app factory. Routers parse and call the service; the service throws LikenessError; one
 * error handler maps errors to JSON `{error: {code, message}}` and never leaks a stack trace.
 */
import express, { ErrorRequestHandler, NextFunction, Request, Response } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import type { Likeness } from '../catalog/open';
import { LikenessError } from '../errors';
import { authenticate, KeyRing } from './auth';
import { requestDeadline } from './deadline';
import type { Metrics } from './metrics';
import { allowedMethods } from './openapi';
import { RateLimiter } from './rate-limit';
import { evalRouter } from './routes/eval';
import { imagesRouter } from './routes/images';
import { ingestRouter } from './routes/ingest';
import { itemsRouter } from './routes/items';
import { searchRouter } from './routes/search';
import { systemRouter } from './routes/system';
import { webRouter } from './routes/web';

export interface AppDeps {
  likeness: Likeness;
  metrics: Metrics;
  log: Logger;
  /** API keys; undefined = authentication and rate limits off. */
  keys?: KeyRing;
}

/** body-parser's error types → our codes. */
function fromBodyParser(err: { type?: string; status?: number; message?: string; code?: string }): LikenessError | undefined {
  // zlib's codes (Z_DATA_ERROR, Z_BUF_ERROR, ...): a gzip, deflate or br body that does not decompress.
  if (err.code?.startsWith('Z_')) return new LikenessError(400, 'BAD_BODY', 'the request body does not decompress as its Content-Encoding says');
  switch (err.type) {
    case 'entity.too.large':
      return new LikenessError(413, 'BODY_TOO_LARGE', 'the request body is too large');
    case 'entity.parse.failed':
      return new LikenessError(400, 'BAD_JSON', 'the request body is not valid JSON');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new LikenessError(415, 'UNSUPPORTED_ENCODING', err.message ?? 'unsupported body encoding');
    case 'request.aborted':
    case 'request.size.invalid':
      return new LikenessError(400, 'BAD_BODY', 'the request body was cut short');
    default:
      // Other client errors from express itself (e.g. a malformed %-escape in the path): no 500 for those.
      if (typeof err.status === 'number' && err.status >= 400 && err.status < 500) return new LikenessError(err.status, 'BAD_REQUEST', 'the request is malformed');
      return undefined;
  }
}

export function createApp({ likeness, metrics, log, keys }: AppDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // Express matches paths case-insensitively by default, while the key check decides on the path as
  // written: '/V1/items' must not be a public static path that the '/v1/items' route then serves.
  app.set('case sensitive routing', true);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const end = metrics.httpDuration.startTimer({ method: req.method });
    res.on('finish', () => {
      // Route patterns, not raw paths, keep label cardinality bounded.
      const route = (req.route?.path as string | undefined) ?? 'unmatched';
      end({ route, status: String(res.statusCode) });
    });
    next();
  });

  const { config } = likeness;
  // Security headers (nosniff, frame denial, CSP for the HTML pages); blob:/data: images for page previews.
  // No upgrade-insecure-requests: served over plain HTTP on a LAN address, it would send the page's own
  // scripts to https:// and break it (TLS, where used, is a proxy's job).
  app.use(helmet({ contentSecurityPolicy: { directives: { imgSrc: ["'self'", 'data:', 'blob:'], upgradeInsecureRequests: null } } }));
  // Evaluation is exempt: it is meant to take long over a big catalogue (write scope, bounded sample sizes).
  const isEval = (req: Request): boolean => req.path.startsWith('/v1/eval');
  app.use(requestDeadline(config.requestTimeoutSeconds, (err, req, res) => onError(err, req, res, () => undefined), isEval));
  // Before any router, so a request without the right key is refused before its body is read.
  app.use(authenticate({ keys, openRead: config.openRead, rate: { perSecond: config.rateLimit, burst: config.rateBurst }, limiter: new RateLimiter() }));

  const maxUpload = likeness.config.maxUploadBytes;
  app.use(systemRouter(likeness, metrics));
  app.use(searchRouter(likeness.service, maxUpload));
  app.use(itemsRouter(likeness.service, maxUpload));
  app.use(imagesRouter(likeness.service));
  app.use(evalRouter(likeness.evaluator));
  // The evaluation report is static files written by `likeness eval --report`.
  if (likeness.config.reportDir) app.use('/report', express.static(likeness.config.reportDir, { index: 'index.html', dotfiles: 'deny' }));
  app.use(ingestRouter(likeness.ingest, { roots: likeness.config.ingestRoots, duplicates: likeness.config.duplicates }));

  app.use(webRouter());

  const allowed = allowedMethods(likeness.embedder.dim);
  app.use((req: Request, res: Response) => {
    const methods = allowed(req.path);
    if (methods) {
      // The path exists, the method does not (RFC 9110 §15.5.6: 405 names the methods that would work).
      res.set('Allow', methods.join(', '));
      res.status(405).json({ error: { code: 'METHOD_NOT_ALLOWED', message: `${req.method} is not allowed on ${req.path.slice(0, 200)}; use ${methods.join(', ')}` } });
      return;
    }
    res.status(404).json({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.path.slice(0, 200)}` } });
  });

  const onError: ErrorRequestHandler = (err, req, res, _next) => {
    const known = err instanceof LikenessError ? err : fromBodyParser(err);
    if (!known) log.error({ err, method: req.method, path: req.path }, 'unhandled error');
    const e = known ?? new LikenessError(500, 'INTERNAL', 'internal error');
    metrics.errors.inc({ code: e.code });
    if (res.headersSent) return;
    if (e.status === 503 && !res.get('Retry-After')) res.set('Retry-After', '1');
    res.status(e.status).json({ error: { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } });
  };
  app.use(onError);
  return app;
}
