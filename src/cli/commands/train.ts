/**
 * `likeness train`: pretrain an encoder with a contrastive method and write a model directory.
 *
 *   likeness train --method simclr --data idx:fashion-mnist --epochs 100 --batch-size 256 --out models/fmnist-simclr
 *   likeness train --method supcon --data photos/ --size 96 --channels 3 --out models/photos --resume
 *
 * Every option has an environment variable LIKENESS_TRAIN_<OPTION> (e.g. LIKENESS_TRAIN_EPOCHS);
 * a flag wins over the variable. See docs/TRAINING.md.
 */
import os from 'os';
import { Command, Option } from 'commander';
import { Dataset, holdOut, sliceDataset, subsetDataset } from '../../data/dataset';
import { openDataset } from '../../data/open';
import { Rng } from '../../augment/rng';
import { initBackend, BACKEND_CHOICES, BackendChoice, ConvKernelChoice } from '../../runtime/backend';
import { MAX_WASM_THREADS } from '../../runtime/wasm-threads';
import { StemKind } from '../../model/resnet';
import { METHOD_NAMES } from '../../train/registry';
import { OPTIMIZERS, OptimizerName } from '../../train/optimizers';
import { hasCheckpoint } from '../../train/checkpoint';
import { KnnMonitorOptions, train, TrainOptions } from '../../train/trainer';
import { bool, int, intIn, list, num, numAbove, numIn } from '../../config/arg-parsers';
import { convKernelsOption } from '../../config/config';
import { augmentOptions, parseAugmentOptions } from './augment';
import { envOption } from '../env-option';

const opt = (flags: string, description: string): Option => envOption('TRAIN', flags, description);

export function trainOptions(): Option[] {
  return [
    opt('--method <name>', 'training method').choices(METHOD_NAMES).default('simclr'),
    opt('--data <spec>', 'training images: idx:fashion-mnist[:train|test], a folder (one sub-folder per class) or a .csv/.jsonl manifest').makeOptionMandatory(),
    opt('--out <dir>', 'output model directory (checkpoints in <dir>/checkpoint)').makeOptionMandatory(),
    opt('--name <name>', 'model name in the manifest (default: the --out folder name)'),
    opt('--resume [bool]', 'continue from <out>/checkpoint if there is one').argParser(bool).default(false),
    opt('--overwrite [bool]', 'start a new run in an <out> that already holds a checkpoint or a model, replacing them (refused without it)').argParser(bool).default(false),
    opt('--init-from <model dir>', "start from this model's weights (fine-tune); its encoder, --mean and --std are the defaults"),
    opt('--checkpoint-minutes <m>', 'also checkpoint inside an epoch after this many minutes (0: only at epoch ends)').argParser(numIn(0)).default(10),
    opt('--checkpoint-every <steps>', 'also checkpoint inside an epoch every n steps (0: off)').argParser(intIn(0)).default(0),
    opt('--epochs <n>', 'epochs').argParser(intIn(1)).default(100),
    opt('--batch-size <n>', 'images per step (each gives --views views)').argParser(intIn(2)).default(256),
    opt('--grad-cache-chunk <n>', 'simclr/supcon: compute each step in chunks of n images per view with gradient caching, so a batch needs the memory of a chunk (about one more forward pass; batch norm per chunk)').argParser(int),
    opt('--limit <n>', 'use only the first n training images').argParser(intIn(1)),
    opt('--holdout <n>', 'do not train on the last n images of --data (after --limit); they are the k-NN monitor\'s validation set, and `likeness eval --holdout n` measures the model on them').argParser(int),
    opt('--seed <n>', 'seed for weights, data order, views and negatives').argParser(int).default(0),
    opt('--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES as string[]).default('auto'),
    convKernelsOption(),
    opt('--threads <n>', `wasm backend: threads for convolutions and matrix products (1 = single-threaded build, at most ${MAX_WASM_THREADS})`)
      .argParser(int)
      .default(Math.min(os.cpus().length, MAX_WASM_THREADS)),
    opt('--progress <mode>', 'bar (terminal), log (a line per epoch) or none').choices(['bar', 'log', 'none']),
    // model
    opt('--encoder <arch>', 'encoder preset (resnet-mini, resnet10, resnet18, resnet50; default resnet-mini, or that of --init-from)'),
    opt('--widths <w,w,...>', "override the preset's stage widths").argParser(list),
    opt('--stages <n,n,...>', "override the preset's residual blocks per stage (e.g. 2,2,2,2)").argParser(list),
    opt('--stem <kind>', "override the preset's stem: small (3x3, for 28-64 px) or imagenet (7x7/2 + max pool, for 224 px)").choices(['small', 'imagenet']),
    opt('--width-multiplier <m>', 'multiply every width').argParser(num),
    opt('--size <px>', 'model input side in pixels').argParser(intIn(8, 1024)).default(28),
    opt('--channels <n>', 'input channels').choices(['1', '3']).default('1'),
    opt('--mean <m,...>', 'per-channel mean of pixels in [0, 1] (default 0.5 each)').argParser(list),
    opt('--std <s,...>', 'per-channel std (default 0.5 each)').argParser(list),
    opt('--proj-hidden <n>', 'projection head hidden width').argParser(intIn(1)),
    opt('--proj-dim <n>', 'projection output width').argParser(intIn(1)),
    opt('--embedding <output>', 'which output the model serves').choices(['encoder', 'projection']).default('encoder'),
    // loss / method
    opt('--temperature <t>', 'loss temperature (default per method: simclr 0.5, moco 0.2, supcon 0.1, swav 0.1, membank 0.07)').argParser(num),
    opt('--views <n>', 'views per image (default 2; membank 1)').argParser(int),
    opt('--moco-momentum <m>', 'MoCo key-encoder EMA (default 0.99)').argParser(num),
    opt('--queue-size <n>', 'MoCo queue length (default 4096)').argParser(intIn(1)),
    opt('--shuffle-bn-groups <n>', 'MoCo: shuffled sub-batches the keys are computed in, each with its own batch-norm statistics (shuffling BN on one device; 1 turns it off) (default 4)').argParser(int),
    opt('--negatives <n>', 'memory-bank NCE noise samples per image (default 4096)').argParser(intIn(1)),
    opt('--bank-momentum <m>', 'memory-bank update momentum (default 0.5)').argParser(num),
    opt('--prototypes <k>', 'SwAV prototypes (default 100)').argParser(intIn(2)),
    opt('--sinkhorn-eps <e>', 'SwAV Sinkhorn epsilon (default 0.05)').argParser(num),
    opt('--sinkhorn-iters <n>', 'SwAV Sinkhorn iterations (default 3)').argParser(intIn(1)),
    opt('--freeze-prototypes <epochs>', 'SwAV: epochs with frozen prototypes (default 1)').argParser(intIn(0)),
    // optimisation
    opt('--optimizer <name>', 'optimizer').choices(OPTIMIZERS as string[]).default('adam'),
    opt('--lr <lr>', 'base learning rate (default: adam 1e-3, sgd 0.06·B/256, lars 0.3·B/256)').argParser(numIn(0)),
    opt('--final-lr <lr>', 'learning rate at the end of the cosine (default 0)').argParser(numIn(0)),
    opt('--warmup-epochs <n>', 'linear warm-up epochs (default min(10, epochs/10))').argParser(intIn(0)),
    opt('--weight-decay <wd>', 'weight decay, not on biases / batch norm (default 1e-6)').argParser(numIn(0)),
    opt('--momentum <m>', 'SGD/LARS momentum, Adam beta1 (default 0.9)').argParser(num),
    // k-NN monitor
    opt('--val-data <spec>', 'labelled validation images for the k-NN monitor (default: idx:fashion-mnist:test for Fashion-MNIST, else --val-fraction of --data)'),
    opt('--val-fraction <f>', 'share of labelled --data held out for validation when no --val-data').argParser(num).default(0.1),
    opt('--knn-bank-limit <n>', 'largest k-NN bank (labelled training images)').argParser(intIn(1)).default(10000),
    opt('--knn-val-limit <n>', 'largest k-NN validation set').argParser(intIn(1)).default(2000),
    opt('--knn-k <k>', 'neighbours').argParser(intIn(1)).default(200),
    opt('--knn-t <t>', 'vote temperature').argParser(numAbove(0)).default(0.1),
    opt('--knn-every <n>', 'run the monitor every n epochs').argParser(intIn(1)).default(1),
    opt('--knn [bool]', 'run the k-NN monitor (labelled data only)').argParser(bool).default(true),
    new Option('--no-knn', 'skip the k-NN monitor'),
    ...augmentOptions('TRAIN'),
  ];
}

/** The first `n` images of `ds` (all of them when it has no more). */
const first = (ds: Dataset, n: number): Dataset => (ds.count <= n ? ds : sliceDataset(ds, 0, n));

/** Training data, k-NN bank and validation set from the options. */
/** Fashion-MNIST's test split, from the same folder as the training split (a downloaded copy, say). */
export function defaultValSpec(data: string): string | undefined {
  const m = /^idx:fashion-mnist(?::(?:train|test))?(?::(.+))?$/.exec(data);
  if (!m) return undefined;
  return m[1] ? `idx:fashion-mnist:test:${m[1]}` : 'idx:fashion-mnist:test';
}

export async function openTrainData(o: Record<string, unknown>, seed: number): Promise<{ data: Dataset; knn: KnnMonitorOptions | false }> {
  const size = o.size as number;
  const channels = Number(o.channels) as 1 | 3;
  let data = await openDataset(o.data as string, { size, channels, limit: o.limit as number | undefined });
  let val: Dataset | undefined;
  if (o.holdout !== undefined) {
    if (o.valData !== undefined) throw new RangeError('--holdout and --val-data both name the validation images: give one');
    ({ train: data, test: val } = holdOut(data, o.holdout as number));
  }
  if (o.knn === false) return { data, knn: false };
  if (!val) {
    const spec = (o.valData as string | undefined) ?? defaultValSpec(String(o.data));
    if (spec) val = await openDataset(spec, { size, channels });
    else if (data.labels) {
      const frac = o.valFraction as number;
      if (!(frac > 0 && frac < 1)) throw new RangeError(`--val-fraction must be in (0, 1), got ${frac}`);
      const order = new Rng(seed ^ 0x76616c).permutation(data.count);
      const nVal = Math.max(1, Math.round(frac * data.count));
      val = subsetDataset(data, order.subarray(0, nVal), `${data.name}[val ${nVal}]`);
      data = subsetDataset(data, order.subarray(nVal), `${data.name}[train ${data.count - nVal}]`);
    }
  }
  if (!val || !data.labels || !val.labels) {
    process.stderr.write('k-NN monitor off: it needs labelled training and validation images (--val-data, class folders or a label column)\n');
    return { data, knn: false };
  }
  return {
    data,
    knn: {
      bank: first(data, o.knnBankLimit as number),
      val: first(val, o.knnValLimit as number),
      k: o.knnK as number,
      temperature: o.knnT as number,
      every: o.knnEvery as number,
    },
  };
}

/** TrainOptions from parsed command-line options (exported for tests). */
export async function trainOptionsFrom(o: Record<string, unknown>): Promise<TrainOptions> {
  const seed = o.seed as number;
  const { data, knn } = await openTrainData(o, seed);
  const methodConfig = Object.fromEntries(
    Object.entries({
      temperature: o.temperature,
      views: o.views,
      projectionHiddenDim: o.projHidden,
      projectionDim: o.projDim,
      momentum: o.mocoMomentum,
      queueSize: o.queueSize,
      shuffleGroups: o.shuffleBnGroups,
      negatives: o.negatives,
      bankMomentum: o.bankMomentum,
      prototypes: o.prototypes,
      epsilon: o.sinkhornEps,
      sinkhornIterations: o.sinkhornIters,
      freezePrototypesEpochs: o.freezePrototypes,
    }).filter(([, v]) => v !== undefined),
  );
  return {
    method: o.method as string,
    methodConfig,
    data,
    outDir: o.out as string,
    name: o.name as string | undefined,
    epochs: o.epochs as number,
    batchSize: o.batchSize as number,
    gradCacheChunk: o.gradCacheChunk as number | undefined,
    optimizer: o.optimizer as OptimizerName,
    lr: o.lr as number | undefined,
    finalLr: o.finalLr as number | undefined,
    warmupEpochs: o.warmupEpochs as number | undefined,
    weightDecay: o.weightDecay as number | undefined,
    momentum: o.momentum as number | undefined,
    encoder:
      o.encoder !== undefined || o.widths !== undefined || o.widthMultiplier !== undefined || o.stages !== undefined || o.stem !== undefined
        ? {
            arch: (o.encoder as string | undefined) ?? 'resnet-mini',
            widths: o.widths as number[] | undefined,
            widthMultiplier: o.widthMultiplier as number | undefined,
            stages: o.stages as number[] | undefined,
            stem: o.stem as StemKind | undefined,
          }
        : undefined,
    mean: o.mean as number[] | undefined,
    std: o.std as number[] | undefined,
    augment: parseAugmentOptions(o),
    embeddingOutput: o.embedding as 'encoder' | 'projection',
    seed,
    resume: o.resume as boolean,
    overwrite: o.overwrite as boolean,
    initFrom: o.initFrom as string | undefined,
    checkpointMinutes: o.checkpointMinutes as number,
    checkpointEverySteps: o.checkpointEvery as number,
    knn,
    progress: (o.progress as 'bar' | 'log' | 'none' | undefined) ?? (process.stderr.isTTY ? 'bar' : 'log'),
  };
}

/** The exit status of a process killed by `sig` (130 for SIGINT, 143 for SIGTERM). */
const exitCodeFor = (sig: NodeJS.Signals): number => 128 + os.constants.signals[sig];

export function trainCommand(): Command {
  const cmd = new Command('train').description('pretrain an encoder (SimCLR, MoCo v2, memory bank, SwAV, SupCon) and write a model directory');
  for (const o of trainOptions()) cmd.addOption(o);
  cmd.addHelpText('after', '\nCtrl-C or SIGTERM stops after the current step with a checkpoint (exit 130/143); --resume continues.');
  cmd.action(async (o: Record<string, unknown>) => {
    const backend = await initBackend(o.backend as BackendChoice, { wasmThreads: o.threads as number, convKernels: o.convKernels as ConvKernelChoice });
    const threads = backend.name === 'wasm' ? `, ${backend.threads} thread${backend.threads === 1 ? '' : 's'}, convolutions: ${backend.convolutions}` : '';
    process.stderr.write(`backend: ${backend.name} (${backend.provider}${threads})\n`);
    const opts = await trainOptionsFrom(o);
    process.stderr.write(`training ${opts.method} on ${opts.data.name}: ${opts.data.count} images, ${opts.epochs} epochs, batch ${opts.batchSize} → ${opts.outDir}\n`);
    if (opts.resume && !hasCheckpoint(opts.outDir)) process.stderr.write(`--resume: no checkpoint in ${opts.outDir}, so this is a new run\n`);
    // SIGINT/SIGTERM stop the run at the next step with a checkpoint (`--resume` continues it); a
    // second signal exits at once, losing only the steps since the last checkpoint.
    const stop = new AbortController();
    const onSignal = (sig: NodeJS.Signals): void => {
      if (stop.signal.aborted) process.exit(exitCodeFor(sig));
      process.stderr.write(`\n${sig}: finishing this step and writing a checkpoint (again to exit at once)\n`);
      stop.abort(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const result = await train({ ...opts, signal: stop.signal });
    const last = result.history.at(-1);
    const knn = last?.knnAccuracy !== undefined ? `, k-NN ${(last.knnAccuracy * 100).toFixed(2)}%` : '';
    if (result.complete || hasCheckpoint(result.outDir)) process.stdout.write(`${result.complete ? 'saved' : 'checkpointed'} ${result.outDir} (${result.modelId ?? 'incomplete'})${knn}\n`);
    else process.stdout.write(`stopped before the first step: nothing to resume in ${result.outDir}\n`);
    // Stopped by a signal: exit as a killed process would (130, 143), so `train && next` does not go on.
    if (stop.signal.aborted && !result.complete) process.exitCode = exitCodeFor(stop.signal.reason as NodeJS.Signals);
  });
  return cmd;
}
