/**
 * Training scenarios run in a worker thread (see runScenario): code under jest runs inside a vm
 * context where tfjs's cpu kernels are ~4x slower (global lookups in hot loops), so the longer
 * training runs execute in a worker with a plain context and return plain JSON to the test.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Dataset, subsetDataset } from '../../src/data/dataset';
import { openIdx } from '../../src/data/idx-dataset';
import { loadModelDir, modelIdOf, readManifest } from '../../src/model/model-dir';
import { knnAccuracy } from '../../src/train/knn';
import { embedDataset, train, TrainOptions } from '../../src/train/trainer';

const TINY_ENCODER = { arch: 'resnet-mini', widths: [4, 8, 16] };
const TINY_HEAD = { projectionHiddenDim: 32, projectionDim: 16 };
const SMALL_AUGMENT = { cropScale: [0.3, 1] as [number, number], blurProb: 0, jitterStrength: 0.5 };
const tempDir = (p: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `likeness-${p}-`));

/** SimCLR on 256 Fashion-MNIST images at 12 px for 3 epochs, k-NN against a 500-image bank. */
async function simclrReal(): Promise<unknown> {
  const all = await openIdx('idx:fashion-mnist', { size: 12, channels: 1 }, 756);
  const data = subsetDataset(all, Array.from({ length: 256 }, (_, i) => i), 'fmnist-train-256');
  const bank = subsetDataset(all, Array.from({ length: 500 }, (_, i) => 256 + i), 'fmnist-bank-500');
  const val = await openIdx('idx:fashion-mnist:test', { size: 12, channels: 1 }, 250);
  const out = tempDir('simclr');
  const result = await train({
    method: 'simclr',
    data,
    outDir: out,
    epochs: 3,
    batchSize: 64,
    lr: 3e-3,
    warmupEpochs: 0,
    encoder: TINY_ENCODER,
    methodConfig: TINY_HEAD,
    augment: SMALL_AUGMENT,
    knn: { bank, val, every: 3 },
    progress: 'none',
    seed: 1,
  });
  const loaded = await loadModelDir(out);
  // The saved network's projection, measured here apart from the trainer's monitor.
  const spec = loaded.manifest.input;
  const [bankF, valF] = [await embedDataset(loaded.model, bank, spec), await embedDataset(loaded.model, val, spec)];
  const projectionKnn = await knnAccuracy(bankF[1], bank.labels!, valF[1], val.labels!);
  tf.dispose([...bankF, ...valF]);
  loaded.model.dispose();
  return { history: result.history, initialKnnAccuracy: result.initialKnnAccuracy, manifest: loaded.manifest, projectionKnn };
}

/** The tiny MoCo run both resume scenarios cut and compare: 2 epochs of batch 16. */
function mocoOptions(data: TrainOptions['data'], seed: number): (outDir: string) => TrainOptions {
  return (outDir) => ({
    method: 'moco',
    data,
    outDir,
    epochs: 2,
    batchSize: 16,
    encoder: TINY_ENCODER,
    methodConfig: { ...TINY_HEAD, queueSize: 48 },
    augment: SMALL_AUGMENT,
    knn: false,
    progress: 'none',
    seed,
  });
}

/** Largest absolute difference between the weights of two model directories. */
async function maxWeightDiff(dirA: string, dirB: string): Promise<number> {
  const [a, b] = [await loadModelDir(dirA), await loadModelDir(dirB)];
  const wa = a.model.getWeights();
  const wb = b.model.getWeights();
  const diff = Math.max(...wa.map((w, i) => tf.sub(w, wb[i]).abs().max().dataSync()[0]));
  a.model.dispose();
  b.model.dispose();
  return diff;
}

/** MoCo for 2 epochs straight, and the same run stopped after 1 epoch and resumed. */
async function mocoResume(): Promise<unknown> {
  const data = await openIdx('idx:fashion-mnist', { size: 8, channels: 1 }, 32);
  const base = mocoOptions(data, 7);
  const straight = await train(base(tempDir('straight')));
  const cutDir = tempDir('cut');
  const first = await train({ ...base(cutDir), stopAfterEpochs: 1 });
  const resumed = await train({ ...base(cutDir), resume: true });
  const weightDiff = await maxWeightDiff(straight.outDir, cutDir);
  const refusal = async (over: Partial<TrainOptions>): Promise<string> => {
    try {
      await train({ ...base(cutDir), resume: true, ...over });
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };
  // Ten times the epochs would also move the default warm-up (a tenth of the epochs): refused, not silently rescheduled.
  const mismatch = [await refusal({ batchSize: 8 }), await refusal({ epochs: 20 }), await refusal({ epochs: 20, warmupEpochs: 0, weightDecay: 0.5 })];
  return { straight: straight.history, first: { complete: first.complete, history: first.history }, resumed: { complete: resumed.complete, history: resumed.history }, maxWeightDiff: weightDiff, mismatch };
}

/** The same run cut inside epoch 2 (after a checkpoint every step), then resumed. */
async function mocoResumeMidEpoch(): Promise<unknown> {
  const data = await openIdx('idx:fashion-mnist', { size: 8, channels: 1 }, 48);
  const base = (outDir: string): TrainOptions => ({ ...mocoOptions(data, 11)(outDir), checkpointEverySteps: 1 });
  const straight = await train(base(tempDir('mid-straight')));
  const cutDir = tempDir('mid-cut');
  // 3 steps per epoch: stop after step 5 = 2 steps into epoch 2, with no checkpoint at the stop itself
  const first = await train({ ...base(cutDir), checkpointEverySteps: 2, stopAfterSteps: 5 });
  const checkpointState = JSON.parse(fs.readFileSync(path.join(cutDir, 'checkpoint', 'trainer.json'), 'utf8')) as { epoch: number; step: number; partial?: { steps: number } };
  const resumed = await train({ ...base(cutDir), resume: true });
  const weightDiff = await maxWeightDiff(straight.outDir, cutDir);
  return { straight: straight.history, first: { complete: first.complete, history: first.history }, checkpointState, resumed: { complete: resumed.complete, history: resumed.history }, maxWeightDiff: weightDiff };
}

/**
 * A run aborted (as by SIGTERM) at the end of epoch 1, with the k-NN monitor on: during the epoch's
 * last batch ('lastStep': that step finishes), or during the epoch's monitor ('monitor': it is cut
 * short). Either way the checkpoint holds the whole epoch as done batches, and the resumed run does
 * the epoch's end (monitor included) and then epoch 2, ending where an uninterrupted run does.
 */
async function mocoAbortAtEpochEnd(where: 'lastStep' | 'monitor'): Promise<unknown> {
  const data = await openIdx('idx:fashion-mnist', { size: 8, channels: 1 }, 48);
  const val = await openIdx('idx:fashion-mnist:test', { size: 8, channels: 1 }, 40);
  const base = (outDir: string): TrainOptions => ({ ...mocoOptions(data, 12)(outDir), knn: { bank: data, val, k: 10 } });
  const straight = await train(base(tempDir('abort-straight')));
  const cutDir = tempDir('abort-cut');
  const stop = new AbortController();
  // Training: 3 steps per epoch, so fetch 3 is epoch 1's last batch. Monitor: one bank batch per
  // pass, so bank fetch 2 is epoch 1's (fetch 1 is the random-weight pass before training).
  const abortOn = (ds: Dataset, n: number): Dataset => {
    let fetches = 0;
    return { ...ds, fetch: (idx) => (++fetches === n && stop.abort('SIGTERM'), ds.fetch(idx)) };
  };
  const cut = where === 'lastStep' ? { data: abortOn(data, 3) } : { knn: { bank: abortOn(data, 2), val, k: 10 } };
  const first = await train({ ...base(cutDir), ...cut, signal: stop.signal });
  const checkpointState = JSON.parse(fs.readFileSync(path.join(cutDir, 'checkpoint', 'trainer.json'), 'utf8')) as { epoch: number; step: number; partial?: { steps: number } };
  const resumed = await train({ ...base(cutDir), resume: true });
  const log = fs.readFileSync(path.join(cutDir, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  return {
    straight: straight.history,
    first: { complete: first.complete, history: first.history },
    checkpointState,
    stopped: log.find((r) => r.type === 'stopped'),
    resumed: { complete: resumed.complete, history: resumed.history },
    maxWeightDiff: await maxWeightDiff(straight.outDir, cutDir),
  };
}

/** Whether trainable weight i of two model directories is equal, for every i where keep(shape) holds. */
async function sameTrainable(dirA: string, dirB: string, keep: (shape: number[]) => boolean): Promise<boolean[]> {
  const [a, b] = [await loadModelDir(dirA), await loadModelDir(dirB)];
  const wa = a.model.trainableWeights.map((w) => w.read());
  const wb = b.model.trainableWeights.map((w) => w.read());
  const same = wa.filter((w) => keep(w.shape)).map((w) => tf.sub(w, wb[wa.indexOf(w)]).abs().max().dataSync()[0] === 0);
  a.model.dispose();
  b.model.dispose();
  return same;
}

/**
 * --init-from: a SimCLR model, then runs at learning rate 0 started from it (so the weights they
 * save are the ones they loaded): SimCLR takes the whole network, MoCo (another head) the encoder.
 */
async function initFrom(): Promise<unknown> {
  const data = await openIdx('idx:fashion-mnist', { size: 8, channels: 1 }, 32);
  const common = { data, epochs: 1, batchSize: 16, methodConfig: TINY_HEAD, augment: SMALL_AUGMENT, knn: false as const, progress: 'none' as const };
  // Stages unlike the preset's [1, 1, 1]: the runs below must take the source's shape, not its preset's.
  const source = await train({ ...common, method: 'simclr', outDir: tempDir('init-source'), encoder: { ...TINY_ENCODER, stages: [1, 2, 1] }, seed: 3 });
  // The source is served with flip averaging: the runs started from it are too.
  const sourceManifest = path.join(source.outDir, 'manifest.json');
  const m = JSON.parse(fs.readFileSync(sourceManifest, 'utf8'));
  fs.writeFileSync(sourceManifest, JSON.stringify({ ...m, embedding: { ...m.embedding, tta: 'hflip' } }));
  const frozen = { lr: 0, finalLr: 0, warmupEpochs: 0, seed: 4, initFrom: source.outDir };
  // no encoder given: it comes from the source's manifest
  const simclr = await train({ ...common, ...frozen, method: 'simclr', outDir: tempDir('init-simclr') });
  const moco = await train({ ...common, ...frozen, method: 'moco', methodConfig: { ...TINY_HEAD, queueSize: 48 }, outDir: tempDir('init-moco') });
  let mismatch = '';
  try {
    await train({ ...common, ...frozen, method: 'simclr', outDir: tempDir('init-bad'), encoder: { arch: 'resnet-mini', widths: [4, 8, 8] } });
  } catch (err) {
    mismatch = (err as Error).message;
  }
  const log = fs.readFileSync(path.join(moco.outDir, 'train-log.jsonl'), 'utf8');
  return {
    sourceId: modelIdOf(source.outDir, readManifest(source.outDir)), // with its tta
    simclrSame: await sameTrainable(source.outDir, simclr.outDir, () => true),
    mocoConvSame: await sameTrainable(source.outDir, moco.outDir, (shape) => shape.length === 4),
    simclrInit: simclr.manifest.training?.initialisedFrom,
    simclrEncoder: simclr.manifest.encoder,
    tta: [source.manifest.embedding.tta, simclr.manifest.embedding.tta, moco.manifest.embedding.tta],
    mocoInitLog: log.split('\n').filter((l) => l.includes('"init"')).map((l) => JSON.parse(l) as Record<string, unknown>),
    mismatch,
  };
}

const SCENARIOS: Record<string, () => Promise<unknown>> = { simclrReal, mocoResume, mocoResumeMidEpoch, mocoAbortInLastStep: () => mocoAbortAtEpochEnd('lastStep'), mocoAbortInMonitor: () => mocoAbortAtEpochEnd('monitor'), initFrom };

if (parentPort && workerData?.scenario) {
  (async () => {
    await tf.setBackend('cpu');
    try {
      parentPort!.postMessage({ ok: true, value: await SCENARIOS[workerData.scenario as string]() });
    } catch (err) {
      parentPort!.postMessage({ ok: false, error: (err as Error).stack ?? String(err) });
    }
  })();
}
