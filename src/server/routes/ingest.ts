/** Ingest jobs: POST /v1/ingest, GET /v1/jobs, GET /v1/jobs/:id, POST /v1/jobs/:id/cancel, GET /v1/jobs/:id/failures */
import { Router } from 'express';
import { z } from 'zod';
import * as path from 'node:path';
import { badRequest, LikenessError, notFound } from '../../errors';
import type { DuplicatePolicy } from '../../catalog/service';
import type { IngestRunner } from '../../ingest/runner';
import { forbiddenPath } from '../../ingest/paths';
import { parse } from '../schemas';
import { jsonBody } from '../upload';

const ingestSchema = z
  .object({
    source: z.object({ type: z.enum(['folder', 'manifest', 'tar']), path: z.string().min(1).max(4096) }).strict(),
    duplicates: z.enum(['skip', 'keep', 'link']).optional(),
  })
  .strict();

// Item keys are 32-bit integers in every store; a larger cursor is malformed, not an empty page.
const pageSchema = z
  .object({ cursor: z.string().regex(/^\d{1,10}$/).refine((c) => Number(c) <= 2 ** 31 - 1, 'cursor is out of range').optional(), limit: z.coerce.number().int().min(1).max(1000).optional() })
  .strip();

/** Job ids are UUIDs: anything else names no job (and never reaches the database, which may refuse its bytes). */
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function ingestRouter(runner: IngestRunner, opts: { roots: string[]; duplicates: DuplicatePolicy }): Router {
  const router = Router({ caseSensitive: true });
  const job = async (id: string) => {
    const view = JOB_ID.test(id) ? await runner.view(id) : undefined;
    if (!view) throw notFound('JOB_NOT_FOUND', `no ingest job '${id.slice(0, 100)}'`);
    return view;
  };

  router.post('/v1/ingest', jsonBody(), async (req, res) => {
    const body = parse(ingestSchema, req.body, 'BAD_INGEST');
    if (opts.roots.length === 0) throw forbiddenPath(body.source.path);
    // A client cannot know the server's working directory: a relative path would be resolved against it.
    if (!path.isAbsolute(body.source.path)) throw badRequest('BAD_PATH', `source.path must be absolute (a path on the server, inside --ingest-roots), got '${body.source.path.slice(0, 200)}'`);
    const view = await runner.submit(body.source, { duplicates: body.duplicates ?? opts.duplicates });
    res.status(202).location(`/v1/jobs/${view.id}`).json({ job: view });
  });

  router.get('/v1/jobs', async (_req, res) => {
    const jobs = await runner.jobs.list(100);
    res.json({ jobs: await Promise.all(jobs.map((j) => runner.view(j.id))) });
  });

  router.get('/v1/jobs/:id', async (req, res) => {
    res.json({ job: await job(req.params.id) });
  });

  /** Stops a queued or running job; items stored so far stay. 409 for a job that already ended. */
  router.post('/v1/jobs/:id/cancel', async (req, res) => {
    const { id } = await job(req.params.id);
    const view = (await runner.cancel(id))!;
    if (view.status !== 'cancelled') throw new LikenessError(409, 'JOB_FINISHED', `job ${id} already ended: ${view.status}`, { status: view.status });
    res.json({ job: view });
  });

  /** The per-item report: failed items (with error codes) and skipped exact duplicates. */
  router.get('/v1/jobs/:id/failures', async (req, res) => {
    const { id } = await job(req.params.id);
    const { cursor, limit = 100 } = parse(pageSchema, req.query);
    const rows = await runner.jobs.report(id, cursor ? Number(cursor) : 0, limit);
    res.json({ items: rows, next: rows.length === limit ? String(rows[rows.length - 1].seq) : undefined });
  });

  return router;
}
