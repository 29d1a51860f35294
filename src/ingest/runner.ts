/**
 * Runs ingest jobs, one at a time, in the background of the server (or in the foreground of
 * `likeness index`). Pipeline: while one chunk is being embedded (worker threads), the next chunk is
 * read and decoded (libuv threads); each chunk's items and their job outcomes commit in one
 * transaction; index inserts yield to the event loop so searches keep being answered.
 */
import type { Logger } from 'pino';
import type { CatalogService, DuplicatePolicy, PhaseTimings, Prepared } from '../catalog/service';
import type { SqliteCatalog } from '../catalog/sqlite-catalog';
import { JobRow, PendingItem, SqliteJobStore } from '../catalog/sqlite-jobs';
import { IngestSource, planSource, readPlanned } from './sources';

export interface IngestOptions {
  duplicates: DuplicatePolicy;
}

export interface JobView extends Omit<JobRow, 'options'> {
  options: IngestOptions;
  done: number;
  /** Measured in this process since the job (re)started; null before the first chunk. */
  imagesPerSecond: number | null;
  etaSeconds: number | null;
}

export interface RunnerOptions {
  /** Allowed roots for client-supplied paths; empty refuses every client path. */
  roots: string[];
  /** Items per chunk (decode + embed + commit unit). */
  chunk: number;
  log: Logger;
}

const processed = (j: JobRow) => j.added + j.unchanged + j.duplicates + j.failed;

export class IngestRunner {
  readonly jobs: SqliteJobStore;
  private readonly queue: string[] = [];
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly rates = new Map<string, { t0: number; done0: number; rate: number | null }>();
  private readonly idle: Array<() => void> = [];
  /** Seconds per pipeline phase over this runner's life (benchmarks, metrics). */
  readonly timings: PhaseTimings = { read: 0, decode: 0, embed: 0, commit: 0, index: 0 };

  constructor(
    private readonly service: CatalogService,
    private readonly catalog: SqliteCatalog,
    private readonly opts: RunnerOptions,
  ) {
    this.jobs = new SqliteJobStore(catalog.database);
  }

  /**
   * Plans the source (validating every path), records the job and queues it. `trusted` sources come
   * from the operator (command line) and may lie outside the allowed roots.
   */
  submit(source: IngestSource, options: IngestOptions, trusted = false): JobView {
    const plan = planSource(source, trusted ? undefined : this.opts.roots);
    const job = this.jobs.create(source, options, plan);
    this.opts.log.info({ job: job.id, source, items: plan.length }, 'ingest job created');
    this.enqueue(job.id);
    return this.view(job.id)!;
  }

  /** Queues jobs left unfinished by a crash or restart. */
  resumeUnfinished(): number {
    const unfinished = this.jobs.unfinished();
    for (const job of unfinished) this.enqueue(job.id);
    if (unfinished.length) this.opts.log.info({ jobs: unfinished.map((j) => j.id) }, 'resuming ingest jobs');
    return unfinished.length;
  }

  view(id: string): JobView | undefined {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    const done = processed(job);
    const rate = this.rates.get(id)?.rate ?? null;
    const left = job.total - done;
    return {
      ...job,
      options: job.options as IngestOptions,
      done,
      imagesPerSecond: rate === null ? null : Math.round(rate * 10) / 10,
      etaSeconds: rate && job.status === 'running' ? Math.ceil(left / rate) : job.status === 'done' ? 0 : null,
    };
  }

  /** Resolves when the queue is empty (CLI, tests). */
  whenIdle(): Promise<void> {
    if (!this.loop) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops after the chunk in progress; unfinished jobs resume on the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
  }

  private enqueue(id: string): void {
    if (!this.queue.includes(id)) this.queue.push(id);
    this.loop ??= this.drain().finally(() => {
      this.loop = undefined;
      for (const resolve of this.idle.splice(0)) resolve();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stopping) {
      const id = this.queue.shift()!;
      try {
        await this.run(id);
      } catch (err) {
        this.opts.log.error({ job: id, err }, 'ingest job failed');
        this.jobs.setStatus(id, 'failed', (err as Error).message);
      }
    }
  }

  private async run(id: string): Promise<void> {
    const job = this.jobs.get(id);
    if (!job || job.status === 'done' || job.status === 'failed') return;
    const { duplicates } = job.options as IngestOptions;
    this.jobs.setStatus(id, 'running');
    const rate = { t0: performance.now(), done0: processed(job), rate: null as number | null };
    this.rates.set(id, rate);

    const prepare = async (items: PendingItem[]): Promise<Prepared[]> => {
      const t = performance.now();
      const inputs = await Promise.all(
        items.map(async (it) => ({ key: it.seq, id: it.id, metadata: it.metadata, image: await readPlanned(it).catch((e: Error) => e) })),
      );
      this.timings.read += (performance.now() - t) / 1000;
      return this.service.prepareMany(inputs, duplicates, this.timings);
    };

    let batch = this.jobs.pending(id, 0, this.opts.chunk);
    let inFlight = batch.length ? prepare(batch) : undefined;
    while (inFlight && !this.stopping) {
      // Start the next chunk's read + decode before waiting on this chunk's embedding.
      const next = this.jobs.pending(id, batch[batch.length - 1].seq, this.opts.chunk);
      const nextInFlight = next.length ? prepare(next) : undefined;
      nextInFlight?.catch(() => undefined); // surfaced when awaited
      const prepared = await inFlight;
      let t = performance.now();
      const results = this.catalog.transaction(() => {
        const written = this.service.commitPrepared(prepared, duplicates);
        this.jobs.recordOutcomes(
          id,
          prepared.map((p) => ({ seq: p.key, state: p.outcome!.state, code: p.outcome!.code, message: p.outcome!.message, duplicateOf: p.outcome!.duplicateOf })),
        );
        return written;
      });
      this.timings.commit += (performance.now() - t) / 1000;
      t = performance.now();
      await this.service.applyToIndex(results);
      this.timings.index += (performance.now() - t) / 1000;
      const now = this.jobs.get(id)!;
      rate.rate = (processed(now) - rate.done0) / ((performance.now() - rate.t0) / 1000);
      batch = next;
      inFlight = nextInFlight;
    }
    if (this.stopping) return;
    this.jobs.setStatus(id, 'done');
    const done = this.view(id)!;
    this.opts.log.info({ job: id, added: done.added, unchanged: done.unchanged, duplicates: done.duplicates, failed: done.failed }, 'ingest job done');
  }
}
