/** likeness serve: the HTTP server. */
import { Command } from 'commander';
import { createServer, Server } from 'node:http';
import { catalogOptions, Config, serverOptions, toConfig } from '../../config/config';
import { Likeness, openLikeness } from '../../catalog/open';
import { createApp } from '../../server/app';
import { KeyRing } from '../../server/auth';
import { closeServer, trackRequests } from '../../server/shutdown';
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
  // Read first: a malformed keys file must stop the start before the model loads.
  const keys = config.apiKeysFile ? KeyRing.fromFile(config.apiKeysFile) : undefined;
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
  if (keys) log.info({ keys: keys.size, openRead: config.openRead, rateLimit: config.rateLimit }, 'API keys loaded');
  else if (!isLoopback(config.host)) log.warn({ host: config.host }, 'no --api-keys-file: anyone who can reach this address can add and delete items');
  const app = createApp({ likeness, metrics, log, keys });
  // Not app.listen: Express 5 passes a listen error to its callback, so a taken port would be
  // logged as "listening" and the process would exit 0 with nothing bound.
  const server = createServer(app);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await likeness.close();
    const e = err as NodeJS.ErrnoException;
    throw new Error(e.code === 'EADDRINUSE' ? `port ${config.port} on ${config.host} is already in use (--port / PORT)` : `cannot listen on ${config.host}:${config.port}: ${e.message}`);
  }
  // Slow clients must not hold sockets forever.
  server.requestTimeout = 60_000;
  server.headersTimeout = 15_000;
  const tracker = trackRequests(server);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ port, host: config.host, items: (await likeness.service.stats()).items, store: likeness.store.kind }, 'listening');
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      log.info({ inFlight: tracker.inFlight }, 'shutting down: no new connections, finishing requests in flight');
      const abandoned = await closeServer(server, tracker, config.shutdownGraceSeconds * 1000);
      if (abandoned > 0) log.warn({ abandoned }, 'requests still running after the grace period were cut off');
      // Stops ingest after its current chunk, snapshots the embedded index, closes the catalogue or the pool.
      await likeness.close();
      const index = likeness.embedded?.index;
      log.info(index ? { indexed: index.size(), seq: index.seq } : {}, 'stopped');
    })());
  return { likeness, server, port, stop };
}

const isLoopback = (host: string): boolean => host === 'localhost' || host === '::1' || host.startsWith('127.');

export function serveCommand(): Command {
  const cmd = new Command('serve').description('serve the search API over the catalogue');
  for (const o of [...catalogOptions(), ...serverOptions()]) cmd.addOption(o);
  cmd.action(async (opts: Record<string, unknown>) => {
    const config = toConfig(opts);
    const running = await startServer(config);
    let signalled = false;
    const shutdown = (): void => {
      // A second signal means "now": the catalogue is crash-safe, only the snapshot is skipped.
      if (signalled) process.exit(1);
      signalled = true;
      // Bound the whole shutdown: a stuck close must not keep an orchestrator waiting forever.
      setTimeout(() => process.exit(1), (config.shutdownGraceSeconds + 60) * 1000).unref();
      running.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on('SIGTERM', shutdown);
    process.on('SIGINT', shutdown);
  });
  return cmd;
}
