/**
 * Runs ingest jobs, one at a time, in the background of the server (or in the foreground of
 * `likeness index`). Pipeline: while one chunk is being embedded (worker threads), the next chunk is
 * read and decoded (libuv threads); each chunk's items and their job outcomes commit in one
 * transaction; index inserts yield to the event loop so searches keep being answered.
 *
 * Items are claimed from the store in chunks with a lease, so on a shared database several replicas
 * split one job, and a chunk whose replica died is reclaimed when its lease expires. With `pollMs`
 * set, the runner also looks for unfinished jobs periodically (submitted by another replica).
 */
import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import type { Logger } from 'pino';
import type { CatalogService, DuplicatePolicy, PhaseTimings, Prepared } from '../catalog/service';
import { FINAL_STATUSES } from '../catalog/jobs';
import type { JobRow, PendingItem } from '../catalog/jobs';
import type { JobQueue, Store } from '../catalog/store';
import { AllowedRoots } from './paths';
import { IngestSource, planSource, readPlanned } from './sources';

export interface IngestOptions {
  duplicates: DuplicatePolicy;
  /** Submitted by a client: every file is checked against the ingest roots again when it is read. */
  confined?: boolean;
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
  /** How long a claimed chunk stays this runner's; must exceed the time one chunk takes. */
  leaseMs?: number;
  /** Look for unfinished jobs (other replicas' submissions, expired leases) this often; 0 = only at start. */
  pollMs?: number;
}

const DEFAULT_LEASE_MS = 120_000;

const processed = (j: JobRow) => j.added + j.unchanged + j.duplicates + j.failed;

export class IngestRunner {
  readonly jobs: JobQueue;
  /** This runner's name on the leases it holds. */
  readonly owner = `${os.hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  private readonly queue: string[] = [];
  private loop: Promise<void> | undefined;
  private stopping = false;
  private readonly rates = new Map<string, { t0: number; done0: number; rate: number | null }>();
  private readonly idle: Array<() => void> = [];
  /** Seconds per pipeline phase over this runner's life (benchmarks, metrics). */
  readonly timings: PhaseTimings = { read: 0, decode: 0, embed: 0, commit: 0, index: 0 };
  private poller: NodeJS.Timeout | undefined;

  constructor(
    private readonly service: CatalogService,
    private readonly store: Store,
    private readonly opts: RunnerOptions,
  ) {
    this.jobs = store.jobs;
    if (opts.pollMs) {
      this.poller = setInterval(() => {
        if (!this.stopping) this.resumeUnfinished().catch((err) => opts.log.warn({ err }, 'polling for ingest jobs failed'));
      }, opts.pollMs);
      this.poller.unref();
    }
  }

  /**
   * Plans the source (validating every path), records the job and queues it. `trusted` sources come
   * from the operator (command line) and may lie outside the allowed roots.
   */
  async submit(source: IngestSource, options: IngestOptions, trusted = false): Promise<JobView> {
    const plan = await planSource(source, trusted ? undefined : this.opts.roots);
    const job = await this.jobs.create(source, { ...options, confined: !trusted }, plan);
    this.opts.log.info({ job: job.id, source, items: plan.length }, 'ingest job created');
    this.enqueue(job.id);
    return (await this.view(job.id))!;
  }

  /** Queues jobs left unfinished by a crash or restart (or submitted to another replica). */
  async resumeUnfinished(): Promise<number> {
    const unfinished = (await this.jobs.unfinished()).filter((j) => !this.queue.includes(j.id) && this.running !== j.id);
    for (const job of unfinished) this.enqueue(job.id);
    if (unfinished.length) this.opts.log.info({ jobs: unfinished.map((j) => j.id) }, 'resuming ingest jobs');
    return unfinished.length;
  }

  async view(id: string): Promise<JobView | undefined> {
    const job = await this.jobs.get(id);
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

  /**
   * Cancels a queued or running job: a running one stops after the chunk it is storing (at most two
   * chunks after the request: the one being stored and the one read ahead, which is dropped). Items
   * stored so far stay. Undefined when there is no such job.
   */
  async cancel(id: string): Promise<JobView | undefined> {
    const job = await this.jobs.cancel(id);
    if (job?.status === 'cancelled') {
      const queued = this.queue.indexOf(id);
      if (queued >= 0) this.queue.splice(queued, 1);
    }
    return job && this.view(id);
  }

  /** Resolves when the queue is empty (CLI, tests). */
  whenIdle(): Promise<void> {
    if (!this.loop) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops after the chunk in progress; unfinished jobs resume on the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.poller);
    await this.loop;
  }

  /** The job being worked on now, if any. */
  private running: string | undefined;

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
      this.running = id;
      try {
        await this.run(id);
      } catch (err) {
        this.opts.log.error({ job: id, err }, 'ingest job failed');
        await this.jobs.setStatus(id, 'failed', (err as Error).message).catch(() => undefined);
      } finally {
        this.running = undefined;
      }
    }
  }

  private async run(id: string): Promise<void> {
    const job = await this.jobs.get(id);
    if (!job || FINAL_STATUSES.includes(job.status)) return;
    const { duplicates, confined } = job.options as IngestOptions;
    const roots = confined ? new AllowedRoots(this.opts.roots) : undefined;
    await this.jobs.setStatus(id, 'running');
    const lease = this.opts.leaseMs ?? DEFAULT_LEASE_MS;
    const claim = () => this.jobs.claim(id, this.owner, this.opts.chunk, lease);
    const rate = { t0: performance.now(), done0: processed(job), rate: null as number | null };
    this.rates.set(id, rate);

    const prepare = async (items: PendingItem[]): Promise<Prepared[]> => {
      const t = performance.now();
      const inputs = await Promise.all(
        items.map(async (it) => ({ key: it.seq, id: it.id, metadata: it.metadata, image: await readPlanned(it, roots).catch((e: Error) => e) })),
      );
      this.timings.read += (performance.now() - t) / 1000;
      return this.service.prepareMany(inputs, duplicates, this.timings);
    };

    const first = await claim();
    let inFlight = first.length ? prepare(first) : undefined;
    let cancelled = false;
    while (inFlight && !this.stopping && !cancelled) {
      // Claim and start the next chunk's read + decode before waiting on this chunk's embedding.
      const next = await claim();
      const nextInFlight = next.length ? prepare(next) : undefined;
      nextInFlight?.catch(() => undefined); // surfaced when awaited
      const prepared = await inFlight;
      let t = performance.now();
      await this.store.transaction(async (tx) => {
        // Only items whose lease this runner still holds: an expired, reclaimed chunk is another's now.
        const held = await tx.holdLeases(id, this.owner, prepared.map((p) => p.key));
        const mine = prepared.filter((p) => held.has(p.key));
        const written = await this.service.commitPrepared(tx, mine, duplicates);
        await tx.recordOutcomes(
          id,
          this.owner,
          mine.map((p) => ({ seq: p.key, state: p.outcome!.state, code: p.outcome!.code, message: p.outcome!.message, duplicateOf: p.outcome!.duplicateOf })),
        );
        return written;
      }, (written) => {
        // Called once the chunk has committed; what follows is the index's time.
        this.timings.commit += (performance.now() - t) / 1000;
        t = performance.now();
        return written;
      });
      this.timings.index += (performance.now() - t) / 1000;
      const now = (await this.jobs.get(id))!;
      rate.rate = (processed(now) - rate.done0) / ((performance.now() - rate.t0) / 1000);
      // A client's cancel (here or through another replica) is seen once per chunk.
      cancelled = now.status === 'cancelled';
      inFlight = nextInFlight;
    }
    if (this.stopping || cancelled) {
      // The chunk read ahead is dropped unstored; its items stay pending (resumed after a stop).
      await inFlight?.catch(() => undefined);
      await this.jobs.release(id, this.owner);
      if (cancelled) this.opts.log.info({ job: id }, 'ingest job cancelled');
      return;
    }
    // Another replica may still hold leases on this job's last chunks; it (or, if it died, the next
    // poll after its lease expires) finishes the job.
    if (!(await this.jobs.finishIfComplete(id))) return;
    const done = (await this.view(id))!;
    this.opts.log.info({ job: id, added: done.added, unchanged: done.unchanged, duplicates: done.duplicates, failed: done.failed }, 'ingest job done');
  }
}
