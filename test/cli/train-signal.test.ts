/**
 * `likeness train` stopped by SIGTERM (Ctrl-C, `docker stop`): it finishes the step in flight,
 * writes a mid-epoch checkpoint, exits 143, and `--resume` continues from that very step.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '../helpers';

const run = promisify(execFile);
const BIN = path.join(__dirname, '..', '..', 'bin', 'likeness');

type LogRecord = { type: string; step?: number; epoch?: number; reason?: string; stepsIntoEpoch?: number };
const readLog = (out: string): LogRecord[] => {
  const file = path.join(out, 'train-log.jsonl');
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LogRecord) : [];
};

describe('likeness train and signals', () => {
  it('SIGTERM writes a checkpoint at the current step and exits 143; --resume continues from it', async () => {
    const out = tempDir();
    // 20 steps per epoch, 20 epochs: far more than the test waits for, so the signal lands mid-run.
    // No timed checkpoints: the only mid-epoch checkpoint is the one the signal writes. The warm-up is
    // given: the resume shortens the run, and a default warm-up (a tenth of --epochs) would change with it.
    const args = [BIN, 'train', '--data', 'idx:fashion-mnist:train', '--limit', '640', '--batch-size', '32', '--widths', '8,16,16',
      '--out', out, '--progress', 'none', '--no-knn', '--backend', 'wasm', '--threads', '1', '--checkpoint-minutes', '0', '--warmup-epochs', '1'];
    const child = spawn(process.execPath, [...args, '--epochs', '20'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    // The first step record (step 10) means training is under way and the handler is installed.
    const deadline = Date.now() + 60_000;
    while (!readLog(out).some((r) => r.type === 'step') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    const code = await exited;

    expect({ code, stderr }).toEqual({ code: 143, stderr: expect.stringContaining('SIGTERM: finishing this step and writing a checkpoint') });
    expect(stdout).toMatch(/^checkpointed /m);
    const stopped = readLog(out).at(-1)!;
    expect(stopped).toMatchObject({ type: 'stopped', reason: 'SIGTERM' });
    expect(stopped.step!).toBeGreaterThanOrEqual(10);
    expect(stopped.step!).toBeLessThan(400);
    const state = JSON.parse(fs.readFileSync(path.join(out, 'checkpoint', 'trainer.json'), 'utf8'));
    expect(state.step).toBe(stopped.step);
    expect(state.epoch * 20 + (state.partial?.steps ?? 0)).toBe(stopped.step);
    expect(fs.existsSync(path.join(out, 'weights.bin'))).toBe(false); // not a finished model

    // Resume, shortened to the epoch the run stopped in: it starts at the stopped step and finishes.
    const epochs = String(state.epoch + 1);
    const resumed = await run(process.execPath, [...args, '--epochs', epochs, '--resume'], { timeout: 120_000 });
    expect(resumed.stdout).toMatch(/^saved /m);
    const log = readLog(out);
    expect(log.find((r) => r.type === 'resume')).toMatchObject({ step: stopped.step, stepsIntoEpoch: state.partial?.steps ?? 0 });
    expect(log.filter((r) => r.type === 'epoch').map((r) => r.epoch)).toEqual(Array.from({ length: state.epoch + 1 }, (_, i) => i + 1));
    expect(fs.existsSync(path.join(out, 'weights.bin'))).toBe(true);
  }, 180_000);

  it('builds the encoder the flags describe (--encoder, --stem, --stages, --widths) and refuses shapes that do not fit', async () => {
    const out = tempDir();
    const args = [BIN, 'train', '--data', 'idx:fashion-mnist:train', '--limit', '64', '--batch-size', '32', '--epochs', '1', '--out', out, '--progress', 'none', '--no-knn', '--backend', 'wasm', '--threads', '1'];
    // ResNet-18's depth with the small-image stem: the usual CIFAR-style encoder for 28-64 px inputs.
    // --resume on an --out without a checkpoint says it starts a new run.
    const first = await run(process.execPath, [...args, '--encoder', 'resnet18', '--stem', 'small', '--stages', '2,2,2,2', '--widths', '4,4,8,8', '--resume'], { timeout: 120_000 });
    expect(first.stderr).toMatch(/--resume: no checkpoint in .*, so this is a new run/);
    const manifest = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
    expect(manifest.encoder).toEqual({ arch: 'resnet18', stem: 'small', block: 'basic', stages: [2, 2, 2, 2], widths: [4, 4, 8, 8], widthMultiplier: 1 });
    const model = JSON.parse(fs.readFileSync(path.join(out, 'model.json'), 'utf8'));
    const layers: Array<{ class_name: string }> = model.modelTopology.model_config?.config.layers ?? model.modelTopology.config.layers;
    expect(layers.filter((l) => l.class_name === 'MaxPooling2D')).toHaveLength(0); // no ImageNet stem
    expect(layers.filter((l) => l.class_name === 'Conv2D').length).toBeGreaterThanOrEqual(1 + 8 * 2); // stem + 8 blocks of 2
    await expect(run(process.execPath, [...args, '--encoder', 'resnet18', '--stages', '2,2'], { timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/stages \[2, 2\] and widths \[64, 128, 256, 512\] must be non-empty and of equal length/) });
    await expect(run(process.execPath, [...args, '--stages', '1,0,1'], { timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/stages must be positive integers, got \[1, 0, 1\]/) });
    await expect(run(process.execPath, [...args, '--stem', 'huge'], { timeout: 60_000 })).rejects.toMatchObject({ stderr: expect.stringMatching(/--stem <kind>' argument 'huge' is invalid/) });
  });
});
