/**
 * Page cursors of both stores: the base64url of the last label of a page. Opaque to clients; a cursor
 * this server did not issue is a 400, never a query.
 */
import { badRequest } from '../errors';

export const encodeCursor = (label: number): string => Buffer.from(String(label)).toString('base64url');

export function decodeCursor(cursor: string): number {
  const text = /^[A-Za-z0-9_-]{1,24}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString() : '';
  const label = /^\d{1,15}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(label)) throw badRequest('BAD_CURSOR', 'the cursor is not one this server issued');
  return label;
}
