/** Quality checks on the live catalogue: POST /v1/eval, GET /v1/eval/ann-recall */
import { Router } from 'express';
import { z } from 'zod';
import type { CatalogEvaluator } from '../../eval/catalog-eval';
import { parse } from '../schemas';
import { jsonBody } from '../upload';

/** Bounds keep one request's work predictable: exact search is queries x items x dim. */
export const MAX_EVAL_K = 1000;
export const MAX_SAMPLE = 100_000;
export const MAX_ANN_SAMPLE = 10_000;
export const MAX_ANN_K = 100;

const evalSchema = z
  .object({
    labelField: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
    sample: z.number().int().min(1).max(MAX_SAMPLE).optional(),
    k: z.number().int().min(1).max(MAX_EVAL_K).optional(),
    temperature: z.number().positive().max(100).optional(),
    seed: z.number().int().min(0).optional(),
  })
  .strict();

const annSchema = z
  .object({
    sample: z.coerce.number().int().min(1).max(MAX_ANN_SAMPLE).optional(),
    k: z.coerce.number().int().min(1).max(MAX_ANN_K).optional(),
    ef: z
      .string()
      .regex(/^\d{1,4}(,\d{1,4}){0,15}$/)
      .optional(),
  })
  .strip();

export function evalRouter(evaluator: CatalogEvaluator): Router {
  const router = Router({ caseSensitive: true });
  router.post('/v1/eval', jsonBody(), async (req, res) => {
    res.json(await evaluator.evaluate(parse(evalSchema, req.body, 'BAD_EVAL')));
  });
  router.get('/v1/eval/ann-recall', async (req, res) => {
    const q = parse(annSchema, req.query, 'BAD_EVAL');
    const efs = (q.ef ?? '10,20,40,80,160,320').split(',').map(Number);
    res.json(await evaluator.annRecall({ sample: q.sample ?? 200, k: q.k ?? 10, efs }));
  });
  return router;
}
