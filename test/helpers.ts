/** Shared test fixtures: real images, the random-weights model, temporary data dirs, configs. */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Config, DEFAULTS } from '../src/config/config';

export const FIXTURES = path.join(__dirname, 'fixtures');
export const FMNIST_DIR = path.join(FIXTURES, 'fashion-mnist');
export const PHOTOS_DIR = path.join(FIXTURES, 'photos');
/** The shipped architecture with fixed random weights (scripts/make-random-model.ts). */
export const TEST_MODEL = path.join(FIXTURES, 'models', 'random-mini');

export interface Fixture {
  id: string;
  file: string;
  folder: string;
  bytes: Buffer;
}

/** The committed Fashion-MNIST PNGs, sorted by id (`<class>/test-<i>.png`). */
export function fmnistFixtures(): Fixture[] {
  const out: Fixture[] = [];
  for (const folder of fs.readdirSync(FMNIST_DIR).sort()) {
    for (const name of fs.readdirSync(path.join(FMNIST_DIR, folder)).sort()) {
      const file = path.join(FMNIST_DIR, folder, name);
      out.push({ id: `${folder}/${name}`, file, folder, bytes: fs.readFileSync(file) });
    }
  }
  return out;
}

export const photo = (name: string): Buffer => fs.readFileSync(path.join(PHOTOS_DIR, name));

export function tempDir(prefix = 'likeness-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function testConfig(dataDir: string, overrides: Partial<Config> = {}): Config {
  return { ...DEFAULTS, dataDir, model: TEST_MODEL, backend: 'wasm', workers: 0, port: 0, host: '127.0.0.1', logLevel: 'silent', ...overrides };
}

export interface ChildServer {
  child: ChildProcess;
  base: string;
  /** Polls /healthz until the server answers (`startSeconds`, 30 s by default). */
  up(): Promise<void>;
  /** SIGTERM (graceful) or SIGKILL, and wait for the exit; resolves to the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnOptions {
  /** Extra `likeness serve` arguments, e.g. ['--import', DEMO_CATALOG]. */
  args?: string[];
  /** How long `up()` waits for /healthz (an --import of the demo catalogue takes a while). */
  startSeconds?: number;
}

/**
 * A random port for a child server, below the kernel's ephemeral range. Ports in that range are also
 * the local ends of the suite's outgoing connections, and of their TIME_WAIT remains for a minute
 * after; a listen on one of those fails with EADDRINUSE (seen on CI: "server did not start").
 */
export function randomPort(): number {
  let low = 32768;
  try {
    low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    /* not Linux: keep the common default */
  }
  // A range that starts below 11000 leaves too little room under it: use the usual default.
  const top = low > 11000 ? low : 32768;
  return 10000 + Math.floor(Math.random() * (top - 10000));
}

/** Keeps the last `max` characters of a child's output, for the error when it fails to start. */
function tail(max = 4000): { push(chunk: Buffer): void; text(): string } {
  let text = '';
  return {
    push(chunk) {
      text = (text + chunk.toString()).slice(-max);
    },
    text: () => text.trim(),
  };
}

/** `likeness serve` as a child process on a random loopback port, configured through its environment. */
export function spawnServer(env: Record<string, string>, port = randomPort(), opts: SpawnOptions = {}): ChildServer {
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'likeness'), 'serve', ...(opts.args ?? [])], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LIKENESS_MODEL: TEST_MODEL, LIKENESS_BACKEND: 'wasm', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Output is kept for the error message; stderr is also passed through, as before.
  const output = tail();
  child.stdout!.on('data', (d: Buffer) => output.push(d));
  child.stderr!.on('data', (d: Buffer) => {
    output.push(d);
    process.stderr.write(d);
  });
  const base = `http://127.0.0.1:${port}`;
  return {
    child,
    base,
    async up() {
      for (let i = 0; i < (opts.startSeconds ?? 30) * 10; i++) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`server on port ${port} exited (${child.exitCode ?? child.signalCode}) before answering; its output:\n${output.text()}`);
        }
        try {
          if ((await fetch(`${base}/healthz`)).ok) return;
        } catch {
          /* not listening yet */
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`server on port ${port} did not answer /healthz within ${opts.startSeconds ?? 30} s; its output:\n${output.text()}`);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode; // already gone (its 'exit' has fired)
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill(signal);
      return exited;
    },
  };
}
