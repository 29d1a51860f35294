/**
 * likeness index <path>: ingest a folder, a manifest (CSV/JSONL) or a tar archive, with a progress
 * bar. Runs on the catalogue files directly, or, with --server, as a job of a running server.
 * Either way the job is resumable: run the same command again after an interruption.
 */
import { Command, Option } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openLikeness } from '../../catalog/open';
import { catalogOptions, toConfig } from '../../config/config';
import type { JobView } from '../../ingest/runner';
import type { SourceType } from '../../ingest/sources';
import { createLogger } from '../logger';
import { httpUrl } from '../../config/arg-parsers';
import { unreachable } from '../../data/fetch';

function sourceType(p: string, given?: string): SourceType {
  if (given) return given as SourceType;
  if (fs.statSync(p, { throwIfNoEntry: false })?.isDirectory()) return 'folder';
  if (/\.tar$/i.test(p)) return 'tar';
  return 'manifest';
}

/** A job from the server's answer, or an error naming its code (401 without a key, 429 when rate limited...). */
async function jobRequest(url: string, init: RequestInit): Promise<JobView> {
  const res = await fetch(url, init).catch((err: Error) => {
    throw new Error(`cannot reach ${url}: ${unreachable(err)} (--server / LIKENESS_SERVER)`);
  });
  const body = (await res.json().catch(() => ({}))) as { job?: JobView; error?: { code: string; message: string } };
  if (!res.ok || !body.job) throw new Error(`${url}: ${body.error?.code ?? `HTTP ${res.status}`}: ${body.error?.message ?? 'no job in the answer'}`);
  return body.job;
}

async function follow(poll: () => Promise<JobView>): Promise<JobView> {
  const bar = new SingleBar(
    { format: 'indexing [{bar}] {value}/{total} | {speed} img/s | ETA {eta_formatted} | dup {duplicates} | failed {failed}', hideCursor: true, etaBuffer: 50 },
    Presets.shades_classic,
  );
  let job = await poll();
  bar.start(job.total, job.done, { speed: 0, duplicates: 0, failed: 0 });
  while (job.status === 'queued' || job.status === 'running') {
    await new Promise((r) => setTimeout(r, 500));
    job = await poll();
    bar.update(job.done, { speed: job.imagesPerSecond ?? 0, duplicates: job.duplicates, failed: job.failed });
  }
  bar.stop();
  return job;
}

export function indexCommand(): Command {
  const cmd = new Command('index')
    .description('ingest a folder (id = relative path), a manifest (CSV/JSONL: path, id, metadata columns) or a tar archive; rerun to resume')
    .argument('<path>');
  for (const o of catalogOptions()) cmd.addOption(o);
  cmd.addOption(new Option('--type <type>', 'source type (default: from the path)').env('LIKENESS_INDEX_TYPE').choices(['folder', 'manifest', 'tar']));
  cmd.addOption(new Option('--server <url>', 'submit to a running server instead of opening the catalogue files').env('LIKENESS_SERVER').argParser(httpUrl));
  cmd.addOption(new Option('--api-key <key>', 'with --server: a key with the write scope (see likeness keys)').env('LIKENESS_API_KEY'));
  cmd.action(async (source: string, opts: Record<string, unknown>) => {
    const config = toConfig(opts);
    const type = sourceType(source, opts.type as string | undefined);
    let job: JobView;
    if (opts.server) {
      const base = String(opts.server).replace(/\/$/, '');
      const auth: Record<string, string> = opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {};
      const submitted = await jobRequest(`${base}/v1/ingest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ source: { type, path: path.resolve(source) }, duplicates: config.duplicates }),
      });
      // The job is the server's: leaving this command does not stop it.
      process.stderr.write(`job ${submitted.id} on ${base}; Ctrl-C stops watching, not the job (to stop it: POST ${base}/v1/jobs/${submitted.id}/cancel)\n`);
      job = await follow(() => jobRequest(`${base}/v1/jobs/${submitted.id}`, { headers: auth }));
    } else {
      // Before the catalogue is opened (and created): a mistyped path must not leave an empty data dir.
      if (!fs.existsSync(source)) throw new Error(`${source}: no such file or folder`);
      const likeness = await openLikeness(config, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel), { resumeJobs: false });
      try {
        const submitted = await likeness.ingest.submit({ type, path: source }, { duplicates: config.duplicates }, true);
        const done = likeness.ingest.whenIdle();
        job = await follow(async () => (await likeness.ingest.view(submitted.id))!);
        await done;
        for (const f of await likeness.ingest.jobs.report(job.id, 0, 1000)) {
          process.stderr.write(`${f.state}: ${f.id}: ${f.code ?? ''} ${f.duplicateOf ? `same bytes as ${f.duplicateOf}` : (f.message ?? '')}\n`);
        }
      } finally {
        await likeness.close();
      }
    }
    if (job.total === 0 && job.status === 'done') process.stderr.write(`no images found in ${source} (${type}); nothing was indexed\n`);
    process.stdout.write(`${JSON.stringify({ job: job.id, status: job.status, total: job.total, added: job.added, unchanged: job.unchanged, duplicates: job.duplicates, failed: job.failed })}\n`);
    process.exitCode = job.failed > 0 || job.status !== 'done' ? 2 : 0;
  });
  return cmd;
}
