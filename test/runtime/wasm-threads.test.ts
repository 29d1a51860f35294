/**
 * The threaded wasm build in Node (src/runtime/wasm-threads.ts): it starts, uses the threads asked
 * for, computes what the single-threaded build computes, and lets the process exit by itself.
 * Each configuration runs in its own process: a process initialises the wasm backend once.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { MAX_WASM_THREADS, prepareWasmThreads } from '../../src/runtime/wasm-threads';

const run = promisify(execFile);
const ROOT = path.join(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'likeness');

/** Forward conv + the gradients of a small conv net (conv, batch-norm moments, dense) on fixed inputs. */
const SCRIPT = `
const tf = require(${JSON.stringify(require.resolve('@tensorflow/tfjs'))});
const { initBackend } = require(${JSON.stringify(path.join(ROOT, 'dist', 'runtime', 'backend.js'))});
function values(n, seed) {
  const out = new Float32Array(n); let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; out[i] = s / 4294967296 - 0.5; }
  return out;
}
(async () => {
  const info = await initBackend('wasm', { wasmThreads: Number(process.argv[2]) });
  const x = tf.tensor(values(16 * 14 * 14 * 8, 1), [16, 14, 14, 8]);
  const w1 = tf.tensor(values(3 * 3 * 8 * 32, 2), [3, 3, 8, 32]);
  const w2 = tf.tensor(values(3 * 3 * 32 * 16, 3), [3, 3, 32, 16]);
  const dense = tf.tensor(values(16 * 10, 4), [16, 10]);
  const f = (a, b, c) => {
    const h = tf.relu(tf.conv2d(x, a, 1, 'same'));
    const { mean, variance } = tf.moments(h, [0, 1, 2]);
    const n = tf.batchNorm4d(h, mean, variance, tf.zeros([32]), tf.ones([32]), 1e-3);
    const g = tf.mean(tf.conv2d(n, b, 2, 'same'), [1, 2]);
    return tf.sum(tf.square(tf.matMul(g, c)));
  };
  const forward = tf.conv2d(x, w1, 1, 'same');
  const grads = tf.grads(f)([w1, w2, dense]);
  const out = { threads: info.threads, forward: Array.from(forward.dataSync()), grads: grads.map((g) => Array.from(g.dataSync())) };
  process.stdout.write(JSON.stringify(out));
})().catch((err) => { console.error(err); process.exit(1); });
`;

let scriptPath: string;

beforeAll(() => {
  scriptPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-threads-')), 'threads.js');
  fs.writeFileSync(scriptPath, SCRIPT);
});

interface Result {
  threads: number;
  forward: number[];
  grads: number[][];
}

async function compute(threads: number): Promise<Result> {
  // A process that did not exit by itself (pool workers holding the event loop) fails on the timeout.
  const { stdout } = await run(process.execPath, [scriptPath, String(threads)], { cwd: ROOT, timeout: 60_000, maxBuffer: 64 << 20 });
  return JSON.parse(stdout) as Result;
}

function relError(ref: number[], got: number[]): number {
  expect(got.length).toBe(ref.length);
  let diff = 0;
  let scale = 1e-12;
  ref.forEach((r, i) => {
    diff = Math.max(diff, Math.abs(r - got[i]));
    scale = Math.max(scale, Math.abs(r));
  });
  return diff / scale;
}

describe('threaded wasm backend', () => {
  it('refuses thread counts the threaded build cannot start (validated before touching anything)', () => {
    for (const bad of [1, 0, 2.5, MAX_WASM_THREADS + 1]) expect(() => prepareWasmThreads(bad)).toThrow(RangeError);
  });

  it('uses the threads asked for and matches the single-threaded build', async () => {
    const single = await compute(1);
    const threaded = await compute(2);
    expect(single.threads).toBe(1);
    expect(threaded.threads).toBe(2);
    expect(relError(single.forward, threaded.forward)).toBeLessThan(1e-5);
    single.grads.forEach((g, i) => expect(relError(g, threaded.grads[i])).toBeLessThan(1e-4));
  }, 120_000);

  it('likeness train --threads 2 trains, checkpoints and exits', async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'likeness-threads-train-')), 'model');
    const { stderr, stdout } = await run(
      process.execPath,
      [BIN, 'train', '--data', 'idx:fashion-mnist:train', '--limit', '128', '--epochs', '1', '--batch-size', '64', '--widths', '8,16,16',
        '--out', out, '--progress', 'none', '--no-knn', '--backend', 'wasm', '--threads', '2'],
      { cwd: ROOT, timeout: 120_000 },
    );
    expect(stderr).toContain('2 threads');
    expect(stdout).toMatch(/^saved /m);
    expect(fs.existsSync(path.join(out, 'weights.bin'))).toBe(true);
  }, 150_000);
});
