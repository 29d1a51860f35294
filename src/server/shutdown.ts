/**
 * Graceful shutdown: stop accepting connections, let in-flight requests finish (bounded), then the
 * caller closes the catalogue (ingest stops after its chunk, the index is snapshotted).
 */
import type { Server } from 'node:http';

export interface RequestTracker {
  /** Requests received and not yet answered (or abandoned by their client). */
  readonly inFlight: number;
  /** Resolves true once no request is in flight, false when `ms` passes first. */
  idle(ms: number): Promise<boolean>;
  /** From now on every response asks its client to close the connection. */
  drain(): void;
}

export function trackRequests(server: Server): RequestTracker {
  let inFlight = 0;
  let draining = false;
  let waiters: Array<() => void> = [];
  // Runs before express sees the request, so every route is counted.
  server.prependListener('request', (_req, res) => {
    inFlight++;
    if (draining) res.setHeader('Connection', 'close');
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) for (const w of waiters.splice(0)) w();
    });
  });
  return {
    get inFlight() {
      return inFlight;
    },
    drain() {
      draining = true;
    },
    idle(ms: number) {
      if (inFlight === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== done);
          resolve(false);
        }, ms);
        waiters.push(done);
      });
    },
  };
}

/**
 * Stops accepting and waits up to `graceMs` for in-flight requests; past that, cuts the remaining
 * connections. Returns how many requests were still in flight when it gave up (0 = all finished).
 */
export async function closeServer(server: Server, tracker: RequestTracker, graceMs: number): Promise<number> {
  tracker.drain();
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  // Keep-alive connections with no request in progress would otherwise hold close() open.
  server.closeIdleConnections();
  const finished = await tracker.idle(graceMs);
  const abandoned = finished ? 0 : tracker.inFlight;
  if (!finished) server.closeAllConnections();
  // Connections that were mid-response close right after their response (Connection: close).
  const idleTimer = setInterval(() => server.closeIdleConnections(), 100);
  let giveUp: NodeJS.Timeout | undefined;
  await Promise.race([closed, new Promise((r) => (giveUp = setTimeout(r, 2000)))]);
  clearTimeout(giveUp);
  clearInterval(idleTimer);
  server.closeAllConnections();
  return abandoned;
}
