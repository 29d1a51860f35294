/**
 * Training-step benchmark on the wasm backend: forward-only vs forward + backward + Adam images/s for
 * the shipped encoder (resnet-mini, 28x28x1), before and after the training kernels, in one run.
 *
 *   npx tsx bench/train-step.ts [--batch 256] [--iters 5] [--before-batch 8] [--before-iters 1]
 *                               [--workers <cores>] [--skip-before] [--profile]
 *                               [--wasm-threads <n>] [--stock <Kernel,...>] [--widths 16,32,64]
 *                               [--encoder resnet18] [--stem small|imagenet] [--stages 2,2,2,2] [--onednn [--bf16]]
 *   (env: BENCH_BATCH, BENCH_ITERS, BENCH_BEFORE_BATCH, BENCH_BEFORE_ITERS, BENCH_WORKERS, BENCH_WASM_THREADS)
 * --workers N also measures data-parallel training over N worker threads (0 skips it).
 * --wasm-threads N runs everything on the threaded wasm build with N XNNPACK threads.
 * --stock Sum,Mean leaves those training kernels stock in the "after" run, to A/B one kernel.
 * --widths sets the encoder's stage widths; default: those of the shipped model (models/fmnist-simclr-mini).
 * --encoder picks another preset (its widths, unless --widths), --stem and --stages override its own,
 * as `likeness train` does: to weigh a larger encoder's cost before training it.
 * --onednn also measures the "after" kernels with oneDNN's convolutions in front (the optional addon
 * native/dnnl-conv, src/runtime/kernels/onednn-conv.ts), in the same process: `onednn` in the output;
 * first with the convolutions alone (`onednnConvOnly`), then with the addon's fused training batch norm
 * too (src/runtime/kernels/onednn-batch-norm.ts), as Likeness runs it. --bf16 (with --onednn) then
 * measures the convolutions with bfloat16 inputs (`onednnBf16`; --conv-kernels onednn-bf16).
 *
 * "before" = stock tfjs 4.22 wasm kernels, with kernels wasm lacks (Conv2DBackpropFilter) run by the
 * cpu backend through a bridge: the only way stock tfjs trains a conv net on wasm. It is slow, so it
 * runs at a smaller batch by default; images/s figures stay comparable. Prints ONE JSON line.
 */
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { readManifest } from '../src/model/model-dir';
import { buildResNet, RESNET_PRESETS, ResNetConfig, resnetConfig, resnetFeatureDim, StemKind } from '../src/model/resnet';
import { cpuBridgeKernel } from '../src/runtime/kernels/cpu-bridge';
import { simdFilterGradStatus, startSimdFilterGradHelpers } from '../src/runtime/kernels/simd-filter-grad';
import { DataParallelTrainer } from '../src/runtime/train-workers';
import { loadDnnlConv } from '../src/runtime/kernels/onednn-conv';
import { onednnBatchNormConfigs } from '../src/runtime/kernels/onednn-batch-norm';
import { registerOnednnConvKernels, registerWasmTrainingKernels, wasmTrainingKernelNames } from '../src/runtime/wasm-kernels';
import { prepareWasmThreads, wasmThreadCount, withThreadedCoreCount } from '../src/runtime/wasm-threads';
import { machine, median, roundTo } from './measure';

interface Options {
  batch: number;
  iters: number;
  beforeBatch: number;
  beforeIters: number;
  skipBefore: boolean;
  profile: boolean;
  /** Gradient worker threads for the multi-core figure (0: skip). */
  workers: number;
  /** XNNPACK threads of the wasm backend (its threaded build when > 1). */
  wasmThreads: number;
  /** Training kernels left stock in the "after" run (A/B of one kernel in one process). */
  stock: string[];
  /** Also measure with oneDNN's convolutions in front of the "after" kernels. */
  onednn: boolean;
  /** Then with their inputs in bf16. */
  bf16: boolean;
  /** The encoder: a preset with the --widths, --stem and --stages overrides. */
  encoder: EncoderShape;
}

interface Figures {
  batch: number;
  iters: number;
  forwardImagesPerSec: number;
  trainImagesPerSec: number;
  /** Training cost per image over forward cost per image. */
  trainToForwardRatio: number;
  tensorsLeakedPerStep: number;
}

function parseOptions(argv: string[]): Options {
  const arg = (name: string, env: string, fallback: number, min = 1): number => {
    const i = argv.indexOf(`--${name}`);
    const raw = i >= 0 ? argv[i + 1] : process.env[env];
    const value = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < min) throw new RangeError(`--${name} must be an integer >= ${min}, got ${raw}`);
    return value;
  };
  return {
    batch: arg('batch', 'BENCH_BATCH', 256),
    iters: arg('iters', 'BENCH_ITERS', 5),
    beforeBatch: arg('before-batch', 'BENCH_BEFORE_BATCH', 8),
    beforeIters: arg('before-iters', 'BENCH_BEFORE_ITERS', 1),
    workers: arg('workers', 'BENCH_WORKERS', os.cpus().length, 0),
    wasmThreads: arg('wasm-threads', 'BENCH_WASM_THREADS', 1),
    stock: argv.includes('--stock') ? argv[argv.indexOf('--stock') + 1].split(',') : [],
    encoder: encoderShape(argv),
    skipBefore: argv.includes('--skip-before'),
    profile: argv.includes('--profile'),
    onednn: argv.includes('--onednn'),
    bf16: argv.includes('--bf16'),
  };
}

const SHIPPED_MODEL = path.join(__dirname, '..', 'models', 'fmnist-simclr-mini');

type EncoderShape = ResNetConfig & { arch: string };

/** The preset and overrides resolved as `likeness train` resolves them (resnetConfig). */
function encoderShape(argv: string[]): EncoderShape {
  const value = (flag: string): string | undefined => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  const ints = (flag: string): number[] | undefined => value(flag)?.split(',').map(Number);
  const arch = value('--encoder') ?? 'resnet-mini';
  const widths = ints('--widths') ?? (arch === 'resnet-mini' ? readManifest(SHIPPED_MODEL).encoder.widths : undefined);
  return resnetConfig({ arch, widths, stages: ints('--stages'), stem: value('--stem') as StemKind | undefined }, 28, 1);
}

/** Encoder + small dense head; loss = mean squared head output (any scalar of the features will do). */
function buildTrainee(shape: EncoderShape): { encoder: tf.LayersModel; head: tf.Sequential } {
  const encoder = buildResNet(shape);
  const head = tf.sequential({
    layers: [tf.layers.dense({ inputShape: [resnetFeatureDim(shape)], units: 64, activation: 'relu' }), tf.layers.dense({ units: 32 })],
  });
  return { encoder, head };
}

/** e.g. "resnet-mini widths 32/64/128": stem and stages only where they differ from the preset's. */
function describe(shape: EncoderShape): string {
  const preset = RESNET_PRESETS[shape.arch];
  const extra = [shape.stem !== preset.stem ? `stem ${shape.stem}` : '', shape.stages.join() !== preset.stages.join() ? `stages ${shape.stages.join('/')}` : ''].filter(Boolean);
  return [`${shape.arch} widths ${shape.widths.join('/')}`, ...extra].join(', ');
}

function countWeights(shape: EncoderShape): number {
  const { encoder, head } = buildTrainee(shape);
  const n = encoder.countParams();
  encoder.dispose();
  head.dispose();
  return n;
}

/** Three significant digits: the stock baseline runs at a fraction of an image per second. */
function round3(x: number): number {
  return Number(x.toPrecision(3));
}

function seconds(start: number): number {
  return (performance.now() - start) / 1000;
}

async function measure(batch: number, iters: number, profile: boolean, shape: EncoderShape): Promise<Figures> {
  const { encoder, head } = buildTrainee(shape);
  const optimizer = tf.train.adam(1e-3);
  // [batch, 28, 28, 1]
  const images = tf.randomUniform([batch, 28, 28, 1]);
  const trainStep = (): number => {
    const loss = optimizer.minimize(() => {
      const features = encoder.apply(images, { training: true }) as tf.Tensor2D;
      return tf.mean(tf.square(head.apply(features) as tf.Tensor2D));
    }, true) as tf.Scalar;
    const value = loss.dataSync()[0];
    loss.dispose();
    return value;
  };
  // Inference mode on the whole batch at once (predict would split it into batches of 32).
  const forward = (): void => {
    tf.tidy(() => (encoder.predict(images, { batchSize: batch }) as tf.Tensor).dataSync());
  };
  const timed = (f: () => unknown): number => {
    const start = performance.now();
    f();
    return (performance.now() - start) / 1000;
  };

  forward();
  trainStep(); // warm-up: creates optimizer slots and XNNPACK operators
  // Interleaved, so that load from other processes hits both alike; medians, so one stall does not
  // decide the ratio. Forward passes are cheap: three per training step.
  const forwardSeconds: number[] = [];
  const trainSeconds: number[] = [];
  const tensorsBefore = tf.memory().numTensors;
  for (let i = 0; i < iters; i++) {
    for (let j = 0; j < 3; j++) forwardSeconds.push(timed(forward));
    trainSeconds.push(timed(trainStep));
  }
  const tensorsLeakedPerStep = (tf.memory().numTensors - tensorsBefore) / iters;
  const forwardImagesPerSec = batch / median(forwardSeconds);
  const trainImagesPerSec = batch / median(trainSeconds);

  if (profile) {
    const info = await tf.profile(() => {
      trainStep();
    });
    const perKernel = new Map<string, number>();
    for (const k of info.kernels) perKernel.set(k.name, (perKernel.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    if (process.env.BENCH_PROFILE_SHAPES) {
      const byShape = new Map<string, number>();
      for (const k of info.kernels) {
        const key = `${k.name} ${k.inputShapes.map((s) => `[${s}]`).join(' ')}`;
        byShape.set(key, (byShape.get(key) ?? 0) + (k.kernelTimeMs as number));
      }
      for (const [key, ms] of [...byShape.entries()].sort((a, b) => b[1] - a[1]).slice(0, 60)) process.stderr.write(`  ${ms.toFixed(1).padStart(7)} ms  ${key}\n`);
    }
    const rows = [...perKernel.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
    process.stderr.write(`profile batch ${batch}:\n${rows.map(([n, ms]) => `  ${n.padEnd(32)} ${ms.toFixed(1)} ms`).join('\n')}\n`);
  }

  images.dispose();
  optimizer.dispose();
  encoder.dispose();
  head.dispose();
  return {
    batch,
    iters,
    forwardImagesPerSec: round3(forwardImagesPerSec),
    trainImagesPerSec: round3(trainImagesPerSec),
    trainToForwardRatio: roundTo(forwardImagesPerSec / trainImagesPerSec, 2),
    tensorsLeakedPerStep,
  };
}

/**
 * Training images/s with the batch split over `workers` threads (each its own wasm backend), same
 * model, loss and optimizer as measure(); batch-norm statistics become per-shard (ghost batch norm).
 */
async function measureParallel(batch: number, iters: number, workers: number, shape: EncoderShape): Promise<{ workers: number; trainImagesPerSec: number }> {
  const { encoder, head } = buildTrainee(shape);
  const model = tf.model({ inputs: encoder.inputs, outputs: head.apply(encoder.outputs[0]) as tf.SymbolicTensor });
  const optimizer = tf.train.adam(1e-3);
  const images = tf.randomUniform([batch, 28, 28, 1]);
  const trainer = await DataParallelTrainer.create(model, optimizer, workers);
  await trainer.step(images); // warm-up
  const start = performance.now();
  for (let i = 0; i < iters; i++) await trainer.step(images);
  const trainImagesPerSec = (batch * iters) / seconds(start);
  await trainer.dispose();
  images.dispose();
  optimizer.dispose();
  model.dispose();
  return { workers, trainImagesPerSec: round3(trainImagesPerSec) };
}

/** Stock wasm plus cpu bridges for the kernels wasm lacks; returns a function undoing it. */
function installStockBaseline(): () => void {
  const bridged = wasmTrainingKernelNames().filter((name) => !tf.getKernel(name, 'wasm'));
  for (const name of bridged) tf.registerKernel(cpuBridgeKernel(name));
  return () => bridged.forEach((name) => tf.unregisterKernel(name, 'wasm'));
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (opts.bf16 && !opts.onednn) throw new Error('--bf16 measures oneDNN with bf16 inputs: pass --onednn too');
  if (opts.wasmThreads > 1) prepareWasmThreads(opts.wasmThreads);
  if (!(await withThreadedCoreCount(() => tf.setBackend('wasm')))) throw new Error('wasm backend did not initialise');
  await tf.ready();
  let before: Figures | undefined;
  if (!opts.skipBefore) {
    const undo = installStockBaseline();
    before = await measure(opts.beforeBatch, opts.beforeIters, opts.profile, opts.encoder);
    undo();
  }
  registerWasmTrainingKernels(opts.stock);
  if (wasmThreadCount() > 1) await startSimdFilterGradHelpers(wasmThreadCount());
  const after = await measure(opts.batch, opts.iters, opts.profile, opts.encoder);
  const parallel = opts.workers > 0 ? await measureParallel(opts.batch, opts.iters, opts.workers, opts.encoder) : undefined;
  let onednn: (Figures & { version: string }) | undefined;
  let onednnConvOnly: Figures | undefined;
  let onednnBf16: Figures | undefined;
  if (opts.onednn) {
    const addon = loadDnnlConv();
    if (typeof addon === 'string') throw new Error(`--onednn: ${addon}`);
    addon.setThreads(wasmThreadCount());
    registerOnednnConvKernels(addon);
    const batchNorm = onednnBatchNormConfigs(addon);
    batchNorm.forEach((k) => tf.unregisterKernel(k.kernelName, 'wasm'));
    onednnConvOnly = await measure(opts.batch, opts.iters, opts.profile, opts.encoder);
    batchNorm.forEach((k) => tf.registerKernel(k));
    onednn = { ...(await measure(opts.batch, opts.iters, opts.profile, opts.encoder)), version: addon.version() };
    if (opts.bf16) {
      addon.setConvPrecision('bf16');
      onednnBf16 = await measure(opts.batch, opts.iters, opts.profile, opts.encoder);
    }
  }
  const result = {
    bench: 'train-step',
    model: `${describe(opts.encoder)} 28x28x1 + dense head ${resnetFeatureDim(opts.encoder)}-64-32, Adam, loss = mean(head^2)`,
    weights: countWeights(opts.encoder),
    backend: tf.getBackend(),
    wasmThreads: wasmThreadCount(),
    stockKernels: opts.stock,
    filterGradThreads: simdFilterGradStatus(),
    machine: machine(),
    after,
    before: before ?? null,
    trainSpeedup: before ? roundTo(after.trainImagesPerSec / before.trainImagesPerSec, 1) : null,
    onednn: onednn
      ? { ...onednn, trainSpeedupOverAfter: roundTo(onednn.trainImagesPerSec / after.trainImagesPerSec, 2), forwardSpeedupOverAfter: roundTo(onednn.forwardImagesPerSec / after.forwardImagesPerSec, 2) }
      : null,
    onednnBf16: onednnBf16 && onednn
      ? { ...onednnBf16, trainSpeedupOverFloat32: roundTo(onednnBf16.trainImagesPerSec / onednn.trainImagesPerSec, 2), forwardSpeedupOverFloat32: roundTo(onednnBf16.forwardImagesPerSec / onednn.forwardImagesPerSec, 2) }
      : null,
    onednnConvOnly: onednnConvOnly && onednn
      ? { ...onednnConvOnly, batchNormTrainSpeedup: roundTo(onednn.trainImagesPerSec / onednnConvOnly.trainImagesPerSec, 2) }
      : null,
    parallel: parallel
      ? { ...parallel, speedupOverOneCore: roundTo(parallel.trainImagesPerSec / after.trainImagesPerSec, 2) }
      : null,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
