/**
 * The shared training loop (solo-learn's BaseMethod.training_step + Lightning's fit, in one place):
 *
 *   for each epoch: seeded shuffle → for each batch: fetch pixels → V augmented views (seeded by
 *   epoch and step) → normalise with the serving `pixelsToTensor` → method.beforeStep →
 *   gradients of method.computeLoss → optimizer step at the scheduled learning rate →
 *   method.afterStep; then the k-NN monitor, a checkpoint and a JSONL record.
 *
 * At the end the network is saved as a model directory whose manifest records the method, its
 * hyper-parameters, the optimizer and schedule, epochs, training time, machine and k-NN accuracy.
 * `resume` continues from `<out>/checkpoint` exactly where it stopped: same data order, same views,
 * same optimizer and method state, so an interrupted run ends with the weights an uninterrupted one
 * would have (on the same backend).
 */
import * as tf from '@tensorflow/tfjs';
import { SingleBar } from 'cli-progress';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deriveSeed, Rng } from '../augment/rng';
import { MultiViewOptions, multiView, pixelsToUnit, toModelInput } from '../augment/views';
import type { Dataset } from '../data/dataset';
import { pixelsToTensor } from '../images/preprocess';
import { MANIFEST_FORMAT, MANIFEST_JSON, ModelManifest } from '../model/manifest';
import { loadModelDir, modelIdOf, readManifest, saveModelDir } from '../model/model-dir';
import { buildResNet, EncoderSpec, resnetConfig, resnetFeatureDim } from '../model/resnet';

export type { EncoderSpec } from '../model/resnet';
import { EpochRecord, hasCheckpoint, loadCheckpoint, removeCheckpoint, saveCheckpoint, TrainerState } from './checkpoint';
import { gradCacheStep, supportsGradCache } from './grad-cache';
import { knnAccuracy } from './knn';
import { registerFastCpuConvFilterGrad } from './cpu-conv-filter-grad';
import { currentBackend, isWasmOutOfMemory, wasmHeapBytes } from '../runtime/backend';
import { ContrastiveMethod, MethodContext, RawConfig, TrainBatch } from './method';
import { createOptimizer, defaultLearningRate, OptimizerConfig, OptimizerName } from './optimizers';
import { methodClass } from './registry';
import { learningRate } from './schedule';
import { withSeededRandom } from './seeded-init';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

export const TRAIN_LOG = 'train-log.jsonl';
/** The outputs of every trained network, in order (buildTwoOutputModel). */
const OUTPUT_NAMES = ['encoder', 'projection'] as const;

export interface KnnMonitorOptions {
  /** Labelled images the validation images are compared with; default: the training set. */
  bank?: Dataset;
  /** Labelled validation images. */
  val: Dataset;
  k?: number;
  temperature?: number;
  /** Run the monitor every n epochs (and after the last). Default 1. */
  every?: number;
}

export interface TrainOptions {
  method: string;
  /** Method settings (temperature, projectionDim, momentum, queueSize, ...); see each method. */
  methodConfig?: RawConfig;
  data: Dataset;
  outDir: string;
  /** Model name in the manifest; default: the output folder's name. */
  name?: string;
  epochs: number;
  batchSize: number;
  optimizer?: OptimizerName;
  /** Base learning rate; default per optimizer (defaultLearningRate). */
  lr?: number;
  finalLr?: number;
  warmupEpochs?: number;
  weightDecay?: number;
  momentum?: number;
  encoder?: EncoderSpec;
  /** Per-channel mean and std for pixelsToTensor. Default 0.5 / 0.5. */
  mean?: number[];
  std?: number[];
  augment?: MultiViewOptions['augment'];
  /** Which output the manifest serves. Default 'encoder'. */
  embeddingOutput?: 'encoder' | 'projection';
  seed?: number;
  resume?: boolean;
  /**
   * Start a new run in an `outDir` that already holds a checkpoint or a trained model, replacing them.
   * Without it (or `resume`) such an `outDir` is refused before any work: hours of training are not
   * lost to a command run twice.
   */
  overwrite?: boolean;
  /**
   * Start from this model directory's weights (fine-tuning). Its encoder and input normalisation
   * are the defaults for `encoder`, `mean` and `std`. Ignored when resuming from a checkpoint.
   */
  initFrom?: string;
  knn?: KnnMonitorOptions | false;
  /**
   * Compute each step in chunks of this many images per view with gradient caching (grad-cache.ts):
   * memory follows the chunk, not the batch, for about one more forward pass; batch norm normalises
   * per chunk. SimCLR and SupCon only. Undefined: one pass over the whole batch.
   */
  gradCacheChunk?: number;
  /** 'bar' (cli-progress on stderr), 'log' (one line per epoch on stderr) or 'none'. */
  progress?: 'bar' | 'log' | 'none';
  /** Write a step record to the JSONL log every n steps. Default 10. */
  logEvery?: number;
  /** Stop after this many epochs in this call (the run can be resumed). For tests and time slicing. */
  stopAfterEpochs?: number;
  /** Also checkpoint inside an epoch every n steps (0: off). Default 0. */
  checkpointEverySteps?: number;
  /** Also checkpoint inside an epoch when this many minutes passed since the last checkpoint (0: off). Default 10. */
  checkpointMinutes?: number;
  /** Stop after this many steps in this call, without an extra checkpoint (simulates a crash; tests). */
  stopAfterSteps?: number;
  /** Called after every epoch. */
  onEpoch?: (record: EpochRecord) => void;
  /**
   * Stop early when aborted (the CLI aborts on SIGINT/SIGTERM): the step in flight finishes, a
   * checkpoint is written where the run stands (mid-epoch if inside one), and train() returns with
   * complete = false, so `resume` continues it without losing the minutes since the last checkpoint.
   */
  signal?: AbortSignal;
}

export interface TrainResult {
  outDir: string;
  modelId?: string;
  manifest: ModelManifest;
  history: EpochRecord[];
  /** Whether all epochs are done (false when stopAfterEpochs cut the run). */
  complete: boolean;
  /** k-NN accuracy of the encoder with its random initial weights (when the monitor runs). */
  initialKnnAccuracy?: number;
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.platform()} ${os.arch()}`,
    node: process.version,
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    // who ran the wasm backend's convolutions ('oneDNN 2.6.3, bf16 inputs'): it changes the numbers a little
    ...(currentBackend()?.convolutions ? { convolutions: currentBackend()?.convolutions } : {}),
  };
}

/** Thrown when a stop was requested (TrainOptions.signal) in the middle of a k-NN pass. */
class StopRequested extends Error {}

/** Lets a signal handler run (the training loop's awaits are only microtasks), then says whether to stop. */
async function stopRequested(signal?: AbortSignal): Promise<boolean> {
  if (!signal) return false;
  await yieldToEventLoop();
  return signal.aborted;
}

/**
 * Embeddings of every image of `ds` from each output of `network` (one [N, D] per output), in
 * inference mode. Throws StopRequested between batches once `signal` is aborted.
 */
export async function embedDataset(network: tf.LayersModel, ds: Dataset, spec: { size: number; channels: 1 | 3; mean: number[]; std: number[] }, batch = 256, signal?: AbortSignal): Promise<tf.Tensor2D[]> {
  const parts: tf.Tensor2D[][] = network.outputs.map(() => []);
  try {
    for (let s = 0; s < ds.count; s += batch) {
      if (await stopRequested(signal)) throw new StopRequested();
      const idx = Array.from({ length: Math.min(batch, ds.count - s) }, (_, i) => s + i);
      const px = await ds.fetch(idx);
      const outs = tf.tidy(() => [network.predict(pixelsToTensor(px, idx.length, spec))].flat() as tf.Tensor2D[]);
      outs.forEach((o, i) => parts[i].push(o));
    }
    return parts.map((p) => tf.concat(p) as tf.Tensor2D);
  } finally {
    parts.flat().forEach((p) => p.dispose());
  }
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const data = opts.data;
  const cls = methodClass(opts.method);
  const methodCfg = cls.configure(opts.methodConfig ?? {});
  if (cls.supervised && !data.labels) throw new Error(`${opts.method} needs labels, and ${data.name} has none`);
  if (!Number.isInteger(opts.epochs) || opts.epochs < 1) throw new RangeError(`epochs must be a positive integer, got ${opts.epochs}`);
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 2) throw new RangeError(`batch size must be an integer >= 2, got ${opts.batchSize}`);
  if (data.count < opts.batchSize) throw new RangeError(`${data.name} has ${data.count} images, fewer than one batch of ${opts.batchSize}`);
  if (opts.gradCacheChunk !== undefined) {
    // Batch norm needs two images to have statistics.
    if (!Number.isInteger(opts.gradCacheChunk) || opts.gradCacheChunk < 2) throw new RangeError(`grad-cache chunk must be an integer >= 2, got ${opts.gradCacheChunk}`);
    if (!supportsGradCache(cls.prototype)) {
      throw new RangeError(`${opts.method} cannot train with gradient caching (its loss needs more than the projections); it works with simclr and supcon`);
    }
  }

  if (tf.getBackend() === 'cpu') registerFastCpuConvFilterGrad(); // the stock one makes conv training ~100x slower
  const seed = opts.seed ?? 0;
  const size = data.size;
  const channels = data.channels;
  const source = opts.initFrom !== undefined ? { dir: opts.initFrom, manifest: readManifest(opts.initFrom) } : undefined;
  if (source && source.manifest.input.channels !== channels) throw new RangeError(`${source.dir} takes ${source.manifest.input.channels}-channel images but ${data.name} is opened with ${channels}`);
  const input = {
    size,
    channels,
    mean: opts.mean ?? source?.manifest.input.mean ?? Array(channels).fill(0.5),
    std: opts.std ?? source?.manifest.input.std ?? Array(channels).fill(0.5),
    fit: 'contain' as const,
    background: '#000000',
  };
  if (input.mean.length !== channels || input.std.length !== channels) throw new RangeError(`mean/std need ${channels} value(s), got ${input.mean.length}/${input.std.length}`);
  // Checked here rather than when the model is saved at the end: a zero std makes every input infinite.
  if (!input.std.every((x) => x > 0 && Number.isFinite(x)) || !input.mean.every(Number.isFinite)) throw new RangeError(`std must be > 0 and mean finite, got mean ${input.mean.join(',')} std ${input.std.join(',')}`);
  // The recorded shape, not the preset name alone: its stem, stages or widths may have been overridden.
  const encSpec = resnetConfig(opts.encoder ?? source?.manifest.encoder ?? { arch: 'resnet-mini' }, size, channels);
  const initFrom = source && { dir: source.dir, modelId: modelIdOf(source.dir, source.manifest) };
  const optName = opts.optimizer ?? 'adam';
  const baseLr = opts.lr ?? defaultLearningRate(optName, opts.batchSize);
  const stepsPerEpoch = Math.floor(data.count / opts.batchSize); // drop the ragged last batch: every step contrasts a full batch
  const totalSteps = stepsPerEpoch * opts.epochs;
  const warmupEpochs = opts.warmupEpochs ?? Math.min(10, Math.floor(opts.epochs / 10));
  const schedule = { baseLr, finalLr: opts.finalLr ?? 0, warmupSteps: warmupEpochs * stepsPerEpoch, totalSteps };
  const optCfg: Partial<OptimizerConfig> = { weightDecay: opts.weightDecay, momentum: opts.momentum };
  const embeddingOutput = opts.embeddingOutput ?? 'encoder';
  const augment = opts.augment ?? {};
  const optimizer = createOptimizer(optName, optCfg);
  // The schedule as resolved (a default warm-up follows --epochs): a resume must not change it silently.
  const resolvedSchedule = { warmupEpochs, finalLr: schedule.finalLr, weightDecay: optimizer.cfg.weightDecay, momentum: optimizer.cfg.momentum };
  const run = { method: opts.method, methodConfig: methodCfg, encoder: encSpec, input, batchSize: opts.batchSize, optimizer: optName, baseLr, seed, augment, data: data.name, count: data.count, initFrom: initFrom?.modelId, schedule: resolvedSchedule };

  const buildEncoder = (): tf.LayersModel => buildResNet(encSpec);
  const ctx: MethodContext = { buildEncoder, datasetSize: data.count, seed };
  const method: ContrastiveMethod = withSeededRandom(seed, () => new cls(buildEncoder(), methodCfg as never, ctx));
  const vars = method.trainableVariables();
  // The augmentation settings are checked where they are used: one view of a blank image now, so a bad
  // value (a flip probability of 2) stops the run before the monitor's first pass and before any file.
  tf.tidy(() => void multiView(tf.zeros([1, size, size, channels]), { views: methodCfg.views, augment }, seed));
  // After every check of the settings (a mistyped option is reported first), before anything is written.
  const logFile = path.join(opts.outDir, TRAIN_LOG);
  const checkpointed = hasCheckpoint(opts.outDir);
  if (!(opts.resume && checkpointed)) {
    const held = checkpointed ? 'a checkpoint' : fs.existsSync(path.join(opts.outDir, MANIFEST_JSON)) ? `a trained model${opts.resume ? ' and no checkpoint to resume' : ''}` : undefined;
    if (held && !opts.overwrite) throw new Error(`${opts.outDir} already holds ${held}: pass --resume to continue that run, --overwrite to start a new one there (replacing it), or choose another --out`);
    if (held) {
      removeCheckpoint(opts.outDir); // else a later --resume would continue the replaced run
      if (fs.existsSync(logFile)) fs.renameSync(logFile, path.join(opts.outDir, `train-log.replaced-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`));
    }
  }
  fs.mkdirSync(opts.outDir, { recursive: true });
  const log = (rec: Record<string, unknown>): void => fs.appendFileSync(logFile, JSON.stringify({ time: new Date().toISOString(), ...rec }) + '\n');

  let state: TrainerState = { epoch: 0, step: 0, elapsedMs: 0, history: [], optimizer: { name: optName, iterations: 0 }, method: {}, run };
  const name = opts.name ?? path.basename(path.resolve(opts.outDir));
  const knnOpts = opts.knn === false ? undefined : opts.knn;
  const knnBank = knnOpts ? knnOpts.bank ?? data : undefined;
  if (knnOpts && (!knnBank!.labels || !knnOpts.val.labels)) throw new Error('the k-NN monitor needs labelled bank and validation datasets');

  const manifestFor = (extra: Record<string, unknown>, quality?: Record<string, unknown>): ModelManifest => ({
    format: MANIFEST_FORMAT,
    name,
    input,
    encoder: { arch: encSpec.arch, stem: encSpec.stem, block: encSpec.block, stages: encSpec.stages, widths: encSpec.widths, widthMultiplier: encSpec.widthMultiplier },
    outputs: [...OUTPUT_NAMES],
    embedding: {
      output: embeddingOutput,
      dim: embeddingOutput === 'encoder' ? resnetFeatureDim(encSpec) : methodCfg.projectionDim,
      // A fine-tuned model is served the way its source was (the monitor still measures one pass).
      ...(source?.manifest.embedding.tta !== undefined && { tta: source.manifest.embedding.tta }),
    },
    training: {
      method: opts.method,
      hyperParameters: method.describe(),
      optimizer: { ...optimizer.cfg, baseLr, finalLr: schedule.finalLr, warmupEpochs, schedule: 'linear warm-up + cosine, per step' },
      batchSize: opts.batchSize,
      // Not a setting a resume must keep: a run that ran out of memory may go on in chunks.
      ...(opts.gradCacheChunk !== undefined && { gradCacheChunk: opts.gradCacheChunk }),
      epochs: state.epoch,
      epochsPlanned: opts.epochs,
      steps: state.step,
      dataset: { name: data.name, images: data.count },
      augment,
      seed,
      ...(initFrom && { initialisedFrom: initFrom.modelId }),
      trainingTimeSeconds: Math.round(state.elapsedMs / 100) / 10,
      machine: machine(),
      history: state.history,
      ...extra,
    },
    quality,
    createdAt: new Date().toISOString(),
  });

  try {
    if (opts.resume && hasCheckpoint(opts.outDir)) {
      const loaded = await loadCheckpoint(opts.outDir, method.network);
      try {
        const differs = changedSettings(loaded.state.run, run);
        if (differs.length) throw new Error(`the checkpoint in ${opts.outDir} was written with different settings (${differs.join(', ')}); pass the same ones, start a new --out or drop --resume`);
        optimizer.setState(vars, loaded.tensors, loaded.state.optimizer);
        method.setState({ tensors: loaded.tensors, json: loaded.state.method });
        state = loaded.state;
      } finally {
        Object.values(loaded.tensors).forEach((t) => t.dispose());
      }
      log({ type: 'resume', epoch: state.epoch, step: state.step, stepsIntoEpoch: state.partial?.steps ?? 0, gradCacheChunk: opts.gradCacheChunk });
    } else if (opts.resume) {
      log({ type: 'start', note: 'no checkpoint found, starting a new run' });
    } else {
      log({ type: 'start', run: { ...run, epochs: opts.epochs, gradCacheChunk: opts.gradCacheChunk } });
    }
    if (initFrom && state.step === 0) {
      const loaded = await loadModelDir(initFrom.dir);
      try {
        const part = method.initWeights(loaded.model);
        log({ type: 'init', from: initFrom.modelId, loaded: part });
      } finally {
        loaded.model.dispose();
      }
    }

    if (knnOpts && state.epoch === 0 && state.initialKnnAccuracy === undefined) {
      // The same encoder with its random initial weights: the baseline training must beat.
      const byOutput = await knnMonitor(method.network, knnBank!, knnOpts, input, opts.signal);
      // Stopped before the first step: nothing to checkpoint, a resume starts afresh.
      if (byOutput) {
        state.initialKnnAccuracy = byOutput[embeddingOutput];
        log({ type: 'knn-init', knnAccuracy: state.initialKnnAccuracy, knnByOutput: byOutput });
      }
    }
    const lastEpoch = opts.stopAfterEpochs !== undefined ? Math.min(opts.epochs, state.epoch + opts.stopAfterEpochs) : opts.epochs;
    const bar = opts.progress === 'bar' ? new SingleBar({ format: 'epoch {ep} [{bar}] {value}/{total} | loss {loss} | {ips} img/s | lr {lr} | ETA {etaAll}', stream: process.stderr, hideCursor: true }) : undefined;
    const runStart = Date.now();
    const stepsAtStart = state.step;
    const everySteps = opts.checkpointEverySteps ?? 0;
    const everyMs = (opts.checkpointMinutes ?? 10) * 60_000;
    let lastCheckpoint = Date.now();
    /** Saves the run; `partial`: the current epoch's batches done so far, for a checkpoint inside it. */
    const checkpoint = async (partial?: TrainerState['partial']): Promise<void> => {
      const optimizerState = optimizer.getState();
      const methodState = method.getState();
      state.optimizer = optimizerState.json;
      state.method = methodState.json;
      await saveCheckpoint(opts.outDir, method.network, manifestFor({ checkpoint: true }), { ...state, partial }, { ...optimizerState.tensors, ...methodState.tensors });
      lastCheckpoint = Date.now();
    };
    let stopped = false;

    for (let epoch = state.epoch; epoch < lastEpoch && !stopped && !opts.signal?.aborted; epoch++) {
      const order = new Rng(deriveSeed(seed, 0x6f72, epoch)).permutation(data.count);
      // A mid-epoch checkpoint: continue after its batches, with its loss sum and time.
      const done = state.partial ?? { steps: 0, lossSum: 0, elapsedMs: 0 };
      state.partial = undefined;
      const epochStart = Date.now() - done.elapsedMs;
      let lossSum = done.lossSum;
      bar?.start(stepsPerEpoch, done.steps, { ep: `${epoch + 1}/${opts.epochs}`, loss: '-', ips: '-', lr: '-', etaAll: '-' });
      for (let b = done.steps; b < stepsPerEpoch; b++) {
        const indices = order.slice(b * opts.batchSize, (b + 1) * opts.batchSize);
        const pixels = await data.fetch(indices);
        const lr = learningRate(state.step, schedule);
        const views = tf.tidy(() => {
          const x01 = pixelsToUnit(pixels, indices.length, size, channels); // [N, S, S, C] in [0, 1]
          return multiView(x01, { views: methodCfg.views, augment }, deriveSeed(seed, epoch, b)).map((v) => toModelInput(v, input));
        });
        const batch: TrainBatch = { views, indices, labels: data.labels ? indices.map((i) => data.labels![i]) : undefined, epoch, step: state.step };
        let loss: number;
        try {
          method.beforeStep(batch);
          const { value, grads } =
            opts.gradCacheChunk === undefined ? tf.variableGrads(() => method.computeLoss(batch), vars) : gradCacheStep(method, batch, vars, opts.gradCacheChunk);
          optimizer.apply(vars, grads, lr);
          method.afterStep(batch);
          loss = (await value.data())[0];
          value.dispose();
        } catch (err) {
          if (!isWasmOutOfMemory(err)) throw err;
          const gib = ((wasmHeapBytes() ?? 0) / 1024 ** 3).toFixed(1);
          const said = (err instanceof Error ? err.message : String(err)).slice(0, 80);
          const chunks = supportsGradCache(method) && opts.gradCacheChunk === undefined ? '; or compute it in chunks with --grad-cache-chunk (e.g. a quarter of the batch), which --resume accepts' : '';
          throw new Error(
            `a training step of ${indices.length} images × ${methodCfg.views} views did not fit in the wasm backend's memory (heap ${gib} GiB, at most 4): ` +
              `lower --batch-size (a new run)${chunks}; or train on tfjs-node, which has no such limit (wasm said: ${said})`,
            { cause: err },
          );
        } finally {
          views.forEach((v) => v.dispose());
        }
        if (!Number.isFinite(loss)) throw new Error(`loss became ${loss} at epoch ${epoch + 1}, step ${b + 1} (lr ${lr}); lower the learning rate or check the data`);
        lossSum += loss;
        state.step++;
        const elapsed = (Date.now() - runStart) / 1000;
        const ips = ((state.step - stepsAtStart) * opts.batchSize) / Math.max(elapsed, 1e-3);
        const remaining = (lastEpoch * stepsPerEpoch - state.step) * (elapsed / (state.step - stepsAtStart));
        bar?.update(b + 1, { loss: loss.toFixed(4), ips: ips.toFixed(1), lr: lr.toExponential(2), etaAll: `${Math.round(remaining)}s` });
        if ((opts.logEvery ?? 10) > 0 && state.step % (opts.logEvery ?? 10) === 0) log({ type: 'step', epoch: epoch + 1, step: state.step, loss, lr, imagesPerSec: ips });
        const midEpoch = b + 1 < stepsPerEpoch;
        if (midEpoch && ((everySteps > 0 && state.step % everySteps === 0) || (everyMs > 0 && Date.now() - lastCheckpoint >= everyMs))) {
          await checkpoint({ steps: b + 1, lossSum, elapsedMs: Date.now() - epochStart });
          log({ type: 'checkpoint', epoch: epoch + 1, step: state.step });
        }
        if (opts.stopAfterSteps !== undefined && state.step - stepsAtStart >= opts.stopAfterSteps) {
          stopped = true;
          break;
        }
        if (await stopRequested(opts.signal)) {
          // After an epoch's last batch too: the resumed run then only does the epoch's end.
          await checkpoint({ steps: b + 1, lossSum, elapsedMs: Date.now() - epochStart });
          stopped = true;
          break;
        }
      }
      bar?.stop();
      if (stopped) break;
      const trainedMs = Date.now() - epochStart; // the epoch's steps, without the monitor
      const every = knnOpts?.every ?? 1;
      let byOutput: Record<string, number> | undefined;
      if (knnOpts && ((epoch + 1) % every === 0 || epoch + 1 === opts.epochs)) {
        byOutput = await knnMonitor(method.network, knnBank!, knnOpts, input, opts.signal);
        if (!byOutput) {
          // Stopped during the monitor: keep every batch of the epoch; a resume redoes only its end.
          await checkpoint({ steps: stepsPerEpoch, lossSum, elapsedMs: trainedMs });
          break;
        }
      }
      const seconds = trainedMs / 1000;
      state.elapsedMs += trainedMs;
      const lr = learningRate(state.step - 1, schedule); // that of the epoch's last step
      const record: EpochRecord = { epoch: epoch + 1, loss: lossSum / stepsPerEpoch, lr, seconds, imagesPerSec: (stepsPerEpoch * opts.batchSize) / seconds };
      if (byOutput) {
        record.knnByOutput = byOutput;
        record.knnAccuracy = byOutput[embeddingOutput];
      }
      state.epoch = epoch + 1;
      state.history.push(record);
      log({ type: 'epoch', ...record });
      if (opts.progress === 'log' || opts.progress === 'bar') {
        const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;
        const others = Object.entries(record.knnByOutput ?? {}).filter(([o]) => o !== embeddingOutput);
        const knn = record.knnAccuracy !== undefined ? ` | k-NN ${pct(record.knnAccuracy)}${others.map(([o, a]) => ` (${o} ${pct(a)})`).join('')}` : '';
        process.stderr.write(`epoch ${record.epoch}/${opts.epochs} | loss ${record.loss.toFixed(4)} | ${record.imagesPerSec.toFixed(1)} img/s${knn}\n`);
      }
      await checkpoint();
      opts.onEpoch?.(record);
    }

    if (opts.signal?.aborted && state.epoch < lastEpoch) log({ type: 'stopped', reason: String(opts.signal.reason), epoch: state.epoch, step: state.step, stepsIntoEpoch: state.step - state.epoch * stepsPerEpoch });
    const complete = state.epoch >= opts.epochs;
    const lastKnn = [...state.history].reverse().find((h) => h.knnAccuracy !== undefined);
    const quality = lastKnn
      ? {
          knn: {
            accuracy: lastKnn.knnAccuracy,
            epoch: lastKnn.epoch,
            ...(lastKnn.knnByOutput && { byOutput: lastKnn.knnByOutput }),
            // Before the first step: random weights, or those of --init-from.
            ...(initFrom ? { initFromAccuracy: state.initialKnnAccuracy } : { randomInitAccuracy: state.initialKnnAccuracy }),
            k: knnOpts?.k ?? 200,
            temperature: knnOpts?.temperature ?? 0.1,
            protocol: 'weighted k-NN, cosine, exp(s/T) votes (Wu et al. 2018, InstDisc)',
            output: embeddingOutput,
            bank: { name: knnBank?.name, images: knnBank?.count },
            val: { name: knnOpts?.val.name, images: knnOpts?.val.count },
          },
        }
      : undefined;
    const manifest = manifestFor({}, quality);
    let modelId: string | undefined;
    if (complete) {
      modelId = await saveModelDir(opts.outDir, method.network, manifest);
      log({ type: 'done', modelId, epochs: state.epoch, trainingTimeSeconds: state.elapsedMs / 1000, knnAccuracy: lastKnn?.knnAccuracy });
    }
    return { outDir: opts.outDir, modelId, manifest, history: state.history, complete, initialKnnAccuracy: state.initialKnnAccuracy };
  } finally {
    optimizer.dispose();
    method.dispose();
  }
}

/**
 * k-NN top-1 of each output of the network ('encoder', 'projection'), from one forward pass;
 * undefined when `signal` stopped it.
 */
async function knnMonitor(network: tf.LayersModel, bank: Dataset, opts: KnnMonitorOptions, spec: { size: number; channels: 1 | 3; mean: number[]; std: number[] }, signal?: AbortSignal): Promise<Record<string, number> | undefined> {
  const features: tf.Tensor2D[] = [];
  try {
    const bankF = await embedDataset(network, bank, spec, undefined, signal);
    features.push(...bankF);
    const valF = await embedDataset(network, opts.val, spec, undefined, signal);
    features.push(...valF);
    const byOutput: Record<string, number> = {};
    for (const [i, name] of OUTPUT_NAMES.entries()) {
      byOutput[name] = await knnAccuracy(bankF[i], bank.labels!, valF[i], opts.val.labels!, { k: opts.k, temperature: opts.temperature });
    }
    return byOutput;
  } catch (err) {
    if (err instanceof StopRequested) return undefined;
    throw err;
  } finally {
    features.forEach((t) => t.dispose());
  }
}

/**
 * Run settings that differ between a checkpoint and this run (--epochs may change: the cosine
 * schedule stretches). A schedule value missing from an older checkpoint is not compared.
 */
function changedSettings(stored: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const storedSchedule = (stored.schedule ?? {}) as Record<string, unknown>;
  const nowSchedule = now.schedule as Record<string, unknown>;
  const top = Object.keys({ ...stored, ...now }).filter((k) => k !== 'epochs' && k !== 'schedule' && JSON.stringify(stored[k]) !== JSON.stringify(now[k]));
  const schedule = Object.keys(storedSchedule).filter((k) => JSON.stringify(storedSchedule[k]) !== JSON.stringify(nowSchedule[k]));
  return [...top, ...schedule];
}
