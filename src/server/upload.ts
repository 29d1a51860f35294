/**
 * Getting image bytes out of a request: multipart (field `image`) or a raw body with an image/*
 * content type. Limits come from the config; limit breaches become 413, malformed bodies 400.
 */
import express, { NextFunction, Request, RequestHandler, Response } from 'express';
import multer from 'multer';
import { badRequest, LikenessError, tooLarge, unsupportedMedia } from '../errors';

export const IMAGE_FIELD = 'image';
/** Small text fields (k, id, metadata JSON) in a multipart body. */
const MAX_FIELD_BYTES = 64 * 1024;
export const MAX_JSON_BYTES = 256 * 1024;

function multerError(err: unknown, maxUploadBytes: number): LikenessError {
  if (err instanceof multer.MulterError) {
    switch (err.code) {
      case 'LIMIT_FILE_SIZE':
        return tooLarge('UPLOAD_TOO_LARGE', `the upload is larger than ${maxUploadBytes} bytes`, { maxBytes: maxUploadBytes });
      case 'LIMIT_FIELD_VALUE':
        return tooLarge('FIELD_TOO_LARGE', `a form field is larger than ${MAX_FIELD_BYTES} bytes`);
      case 'LIMIT_UNEXPECTED_FILE':
        return badRequest('BAD_MULTIPART', `send exactly one file, in the field '${IMAGE_FIELD}' (got '${err.field ?? '?'}')`);
      default:
        return badRequest('BAD_MULTIPART', `malformed multipart body: ${err.message}`);
    }
  }
  return badRequest('BAD_MULTIPART', `malformed multipart body: ${(err as Error).message}`);
}

/**
 * Parses an upload into req.file (multipart) or req.body as a Buffer (raw image/*), and JSON bodies
 * into req.body. Any other content type is 415.
 */
export function parseBody(maxUploadBytes: number, opts: { json: boolean }): RequestHandler {
  const multipart = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: maxUploadBytes, files: 1, fields: 16, fieldSize: MAX_FIELD_BYTES, parts: 20, headerPairs: 100 },
  }).single(IMAGE_FIELD);
  const raw = express.raw({ type: 'image/*', limit: maxUploadBytes });
  const json = express.json({ limit: MAX_JSON_BYTES, strict: true });
  return (req: Request, res: Response, next: NextFunction) => {
    const type = req.headers['content-type'] ?? '';
    if (/^multipart\/form-data/i.test(type)) {
      multipart(req, res, (err?: unknown) => next(err ? multerError(err, maxUploadBytes) : undefined));
    } else if (/^image\//i.test(type)) {
      // The same code as a multipart upload over the limit: it is the same limit.
      raw(req, res, (err?: unknown) =>
        next((err as { type?: string } | undefined)?.type === 'entity.too.large' ? tooLarge('UPLOAD_TOO_LARGE', `the upload is larger than ${maxUploadBytes} bytes`, { maxBytes: maxUploadBytes }) : err),
      );
    } else if (opts.json && isJson(type)) {
      json(req, res, next);
    } else {
      const accepted = opts.json ? 'multipart/form-data, image/*, application/json' : 'multipart/form-data, image/*';
      next(unsupportedMedia('UNSUPPORTED_CONTENT_TYPE', `content type '${type.slice(0, 100) || '(none)'}' is not accepted; send ${accepted}`));
    }
  };
}

/**
 * A JSON body (or none, for routes whose fields all have defaults). Another content type is 415: express.json
 * alone skips it, and the route would run on its defaults (a `fetch` that posts a string sends text/plain).
 */
export function jsonBody(): RequestHandler {
  const json = express.json({ limit: MAX_JSON_BYTES, strict: true });
  return (req: Request, res: Response, next: NextFunction) => {
    const type = req.headers['content-type'] ?? '';
    // Refused: a type that is not JSON, or bytes without a type. An empty body (none, length 0, or an empty
    // chunked one, which has no type) leaves every field at its default.
    if (type !== '' ? !isJson(type) : Number(req.headers['content-length'] ?? 0) > 0) {
      return next(unsupportedMedia('UNSUPPORTED_CONTENT_TYPE', `content type '${type.slice(0, 100) || '(none)'}' is not accepted; send application/json`));
    }
    json(req, res, next);
  };
}

/** application/json, with or without parameters (not application/jsonl or application/json-seq). */
const isJson = (type: string): boolean => /^application\/json\s*(;|$)/i.test(type);

/** The uploaded image bytes, or undefined when the request carried none. */
export function uploadedImage(req: Request): Buffer | undefined {
  if (req.file) return req.file.buffer;
  if (Buffer.isBuffer(req.body)) return req.body;
  return undefined;
}
