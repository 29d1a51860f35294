/**
 * A per-request deadline: a request still unanswered after `seconds` gets 503 REQUEST_TIMEOUT (with
 * Retry-After) so a client is never left hanging on a stuck decode, a slow upload or a saturated core.
 * The handler keeps running to its end (its late answer is dropped): an add that commits after the
 * deadline stays committed, and retrying the same id is safe because adds replace by id.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { LikenessError } from '../errors';

export function requestDeadline(
  seconds: number,
  respond: (err: LikenessError, req: Request, res: Response) => void,
  exempt: (req: Request) => boolean = () => false,
): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!(seconds > 0) || exempt(req)) return next();
    const timer = setTimeout(() => {
      if (res.headersSent) return;
      // The request body may still be arriving; closing the connection stops reading it.
      res.set('Connection', 'close');
      respond(new LikenessError(503, 'REQUEST_TIMEOUT', `the request was not answered within ${seconds} s`), req, res);
    }, seconds * 1000);
    res.once('close', () => clearTimeout(timer));
    next();
  };
}
