/**
 * A real PostgreSQL server for tests: PGlite (PostgreSQL compiled to wasm) with the real pgvector
 * extension, served over the wire protocol by pglite-socket on a loopback port in a child process, so
 * stores connect with `pg` exactly as they would to a real server. PGlite is a single session: the
 * socket server multiplexes connections onto it and runs one transaction at a time, so row locks
 * between concurrent transactions are never contended here. Test use only (no fsync).
 */
import { ChildProcess, fork } from 'node:child_process';
import * as path from 'node:path';

export interface TestPostgres {
  url: string;
  port: number;
  /** Drops every connection and listens again on the same port, keeping the data (a database restart). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function next(child: ChildProcess, type: string): Promise<{ port: number }> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: { type: string; port: number }) => {
      if (m.type !== type) return;
      child.off('exit', onExit);
      child.off('message', onMessage);
      resolve(m);
    };
    const onExit = (code: number | null) => reject(new Error(`PGlite server exited (${code}) before '${type}'`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  const child = fork(path.join(__dirname, 'pglite-server.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await next(child, 'ready');
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async restart() {
      const done = next(child, 'restarted');
      child.send('restart');
      await done;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.send('stop');
      await exited;
    },
  };
}
