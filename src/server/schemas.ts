/** Request validation (zod). Form fields and query strings arrive as text, so numbers are coerced there. */
import { z } from 'zod';
import { isObject } from '../catalog/service';
import { badRequest } from '../errors';

const filterValue = (v: unknown): boolean => (typeof v === 'string' ? v.length <= 1024 : typeof v === 'number' || typeof v === 'boolean');
/**
 * Field → string (at most 1024 characters), number or boolean. Checked in place rather than as a
 * z.record, which rebuilds the object by assignment and so drops a field named `__proto__`.
 */
export const filterSchema = z.custom<Record<string, string | number | boolean>>(
  (v) => isObject(v) && Object.entries(v).every(([k, x]) => k.length <= 64 && filterValue(x)),
  { error: 'must be an object of field names (at most 64 characters) to a string (at most 1024 characters), number or boolean' },
);

export const searchJsonSchema = z
  .object({
    vector: z.array(z.number()).max(65536).optional(),
    id: z.string().optional(),
    k: z.number().optional(),
    minScore: z.number().optional(),
    filter: filterSchema.optional(),
  })
  .strict();

/** JSON carried inside a text field or query parameter (e.g. filter, metadata). */
const jsonText = (field: string) =>
  z.string().transform((text, ctx) => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      ctx.addIssue({ code: 'custom', message: `${field} is not valid JSON` });
      return z.NEVER;
    }
  });

const numberText = z
  .string()
  .regex(/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/, 'must be a number')
  .transform(Number);

export const searchFormSchema = z
  .object({
    k: numberText.optional(),
    minScore: numberText.optional(),
    filter: jsonText('filter').pipe(filterSchema).optional(),
  })
  .strip();

export const itemFormSchema = z
  .object({
    id: z.string(),
    metadata: jsonText('metadata').optional(),
  })
  .strip();

export const listQuerySchema = z
  .object({
    cursor: z.string().max(64).optional(),
    limit: numberText.optional(),
  })
  .strip();

/** Error code for a problem in a known field, the same code the service uses for that field. */
const FIELD_CODES: Record<string, string> = {
  vector: 'BAD_VECTOR',
  k: 'BAD_K',
  minScore: 'BAD_MIN_SCORE',
  filter: 'BAD_FILTER',
  id: 'BAD_ID',
  metadata: 'BAD_METADATA',
  limit: 'BAD_LIMIT',
  cursor: 'BAD_CURSOR',
  threshold: 'BAD_THRESHOLD',
  labelField: 'BAD_LABEL_FIELD',
};

/** Parses or throws 400 with the first problem's path and message; `code` is for problems outside known fields. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, code = 'BAD_REQUEST'): z.output<T> {
  const result = schema.safeParse(value ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue.code === 'unrecognized_keys' ? undefined : String(issue.path[0] ?? '');
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw badRequest((field && FIELD_CODES[field]) || code, `${where}${issue.message}`);
  }
  return result.data;
}
