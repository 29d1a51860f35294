/** likeness serve: the HTTP server. */
import { Command } from 'commander';
import type { Server } from 'node:http';
import { catalogOptions, Config, serverOptions, toConfig } from '../../config/config';
import { Likeness, openLikeness } from '../../catalog/open';
import { createApp } from '../../server/app';
import { createMetrics } from '../../server/metrics';
import { createLogger } from '../logger';

export interface RunningServer {
  likeness: Likeness;
  server: Server;
  port: number;
  stop(): Promise<void>;
}

/** Opens the catalogue and listens; resolves once the port is bound. Used by the CLI and by tests. */
export async function startServer(config: Config): Promise<RunningServer> {
  const log = createLogger(config.logLevel);
  const metrics = createMetrics();
  const likeness = await openLikeness(config, log, {
    onBatch: (size, seconds) => {
      metrics.embedBatchSize.observe(size);
      metrics.embedBatchSeconds.observe(seconds);
    },
    resumeJobs: true,
  });
  if (config.importDir) {
    // Operator-given folder: trusted, and finished before we listen so the first search sees it.
    const job = await likeness.ingest.submit({ type: 'folder', path: config.importDir }, { duplicates: config.duplicates }, true);
    await likeness.ingest.whenIdle();
    const done = (await likeness.ingest.view(job.id))!;
    log.info({ dir: config.importDir, added: done.added, unchanged: done.unchanged, duplicates: done.duplicates, failed: done.failed }, 'folder imported');
  }
  const app = createApp({ likeness, metrics, log });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.port, config.host, () => resolve(s));
    s.once('error', reject);
  });
  // Slow clients must not hold sockets forever.
  server.requestTimeout = 60_000;
  server.headersTimeout = 15_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ port, host: config.host, items: (await likeness.service.stats()).items, store: likeness.store.kind }, 'listening');
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await likeness.close();
      log.info('stopped');
    })());
  return { likeness, server, port, stop };
}

export function serveCommand(): Command {
  const cmd = new Command('serve').description('serve the search API over the catalogue');
  for (const o of [...catalogOptions(), ...serverOptions()]) cmd.addOption(o);
  cmd.action(async (opts: Record<string, unknown>) => {
    const running = await startServer(toConfig(opts));
    const shutdown = (): void => {
      running.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.once('SIGTERM', shutdown);
    process.once('SIGINT', shutdown);
  });
  return cmd;
}
