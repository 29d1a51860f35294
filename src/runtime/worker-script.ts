/**
 * Starts a worker thread from a module next to the caller, compiled (.js) or, in a source checkout and
 * under jest, TypeScript (.ts) loaded through tsx.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker, WorkerOptions } from 'node:worker_threads';

export function startWorker(dir: string, name: string, options: WorkerOptions = {}): Worker {
  const js = path.join(dir, `${name}.js`);
  if (fs.existsSync(js)) return new Worker(js, options);
  const ts = path.join(dir, `${name}.ts`);
  if (!fs.existsSync(ts)) throw new Error(`worker module ${name} not found in ${dir}`);
  const boot = `require('tsx/cjs'); require(${JSON.stringify(ts)});`;
  return new Worker(boot, { ...options, eval: true });
}
