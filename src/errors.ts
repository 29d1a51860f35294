/**
 * Domain errors. Services throw them; the HTTP layer maps `status` and `code` to a JSON response,
 * the CLI prints `message`. `code` values are stable API: clients branch on them.
 */
export class LikenessError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'LikenessError';
  }
}

export const badRequest = (code: string, message: string, details?: Record<string, unknown>) => new LikenessError(400, code, message, details);
export const notFound = (code: string, message: string) => new LikenessError(404, code, message);
export const conflict = (code: string, message: string) => new LikenessError(409, code, message);
export const tooLarge = (code: string, message: string, details?: Record<string, unknown>) => new LikenessError(413, code, message, details);
export const unsupportedMedia = (code: string, message: string) => new LikenessError(415, code, message);
export const unprocessable = (code: string, message: string) => new LikenessError(422, code, message);
export const unavailable = (code: string, message: string) => new LikenessError(503, code, message);
