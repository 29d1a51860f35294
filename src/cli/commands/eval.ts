/** likeness eval: embedding quality on a labelled train/test split, with baselines. */
import { Command, Option } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { catalogOptions, toConfig } from '../../config/config';
import { holdOut } from '../../data/dataset';
import { openDataset } from '../../data/open';
import { evaluateOffline } from '../../eval/offline';
import { evaluateVariants } from '../../eval/variants';
import { writeReport } from '../../eval/report';
import { readManifest } from '../../model/model-dir';
import { initBackend } from '../../runtime/backend';
import { MAX_WASM_THREADS } from '../../runtime/wasm-threads';
import { bool, int, intIn, intList, numAbove } from '../../config/arg-parsers';

const env = (flags: string, description: string, name: string) => new Option(flags, description).env(name);

export function evalCommand(): Command {
  const cmd = new Command('eval').description('measure a model: k-NN accuracy, recall@k, mAP, linear probe, ANN recall, next to raw-pixel and random-weight baselines');
  for (const o of catalogOptions().filter((o) => ['--model', '--tta', '--backend', '--conv-kernels', '--workers', '--log-level'].some((f) => o.flags.startsWith(f)))) cmd.addOption(o);
  cmd.addOption(env('--train <spec>', 'bank: idx:fashion-mnist:train, a class-per-folder directory, or a manifest', 'LIKENESS_EVAL_TRAIN').default('idx:fashion-mnist:train'));
  cmd.addOption(env('--test <spec>', 'queries (same forms as --train)', 'LIKENESS_EVAL_TEST').default('idx:fashion-mnist:test'));
  cmd.addOption(env('--k <n>', 'neighbours for weighted k-NN', 'LIKENESS_EVAL_K').argParser(intIn(1)).default(200));
  cmd.addOption(env('--temperature <t>', 'k-NN vote temperature', 'LIKENESS_EVAL_TEMPERATURE').argParser(numAbove(0)).default(0.1));
  cmd.addOption(env('--output <name>', "measure this output of the network instead of the served one (encoder, projection)", 'LIKENESS_EVAL_OUTPUT').choices(['encoder', 'projection']));
  cmd.addOption(env('--limit-train <n>', 'use only the first n bank images', 'LIKENESS_EVAL_LIMIT_TRAIN').argParser(intIn(1)));
  cmd.addOption(env('--limit-test <n>', 'use only the first n query images', 'LIKENESS_EVAL_LIMIT_TEST').argParser(intIn(1)));
  cmd.addOption(
    env('--holdout <n>', 'queries are the last n images of --train, the bank the ones before them; --test is not read (to choose between models without looking at the test split)', 'LIKENESS_EVAL_HOLDOUT').argParser(int),
  );
  cmd.addOption(
    env('--variants [bool]', 'measure every output of the network, each with and without flip averaging, from one pass of each image and its mirror (to choose what to serve; no baselines, index sweep or report)', 'LIKENESS_EVAL_VARIANTS')
      .argParser(bool)
      .conflicts(['output', 'report']),
  );
  cmd.addOption(env('--baselines [bool]', 'measure the raw-pixel and random-weight baselines', 'LIKENESS_EVAL_BASELINES').argParser(bool).default(true));
  cmd.addOption(new Option('--no-baselines', 'skip the baselines'));
  cmd.addOption(env('--probe [bool]', 'fit the linear probe', 'LIKENESS_EVAL_PROBE').argParser(bool).default(true));
  cmd.addOption(new Option('--no-probe', 'skip the linear probe'));
  cmd.addOption(env('--ef <list>', 'HNSW ef values for the recall sweep', 'LIKENESS_EVAL_EF').argParser(intList(1)).default([10, 20, 40, 80, 160, 320], '10,20,40,80,160,320'));
  cmd.addOption(env('--out <file>', 'also write the JSON report here', 'LIKENESS_EVAL_OUT'));
  cmd.addOption(env('--report <dir>', 'write an HTML report with pictures to this folder', 'LIKENESS_EVAL_REPORT'));
  cmd.action(async (opts: Record<string, unknown>) => {
    const config = toConfig(opts);
    // Checked before the embedding, which can take an hour: a bad path must not lose the run.
    if (opts.out) writableFile(String(opts.out), '--out');
    if (opts.report) writableFolder(String(opts.report), '--report');
    const variants = opts.variants === true;
    // Not a commander conflict: that would also refuse a LIKENESS_TTA exported for serve.
    if (variants && cmd.getOptionValueSource('tta') === 'cli') throw new Error('--variants measures every output with and without flip averaging; drop --tta');
    // --variants embeds in this thread (every output at once), so the wasm backend gets the workers' threads.
    const backend = await initBackend(config.backend, {
      convKernels: config.convKernels,
      ...(variants ? { wasmThreads: Math.min(Math.max(1, config.workers), MAX_WASM_THREADS) } : {}),
    });
    const manifest = readManifest(config.model);
    const open = (spec: string, limit?: number) => openDataset(spec, { size: manifest.input.size, channels: manifest.input.channels, limit });
    const holdout = opts.holdout as number | undefined;
    const { train, test } =
      holdout !== undefined
        ? holdOut(await open(String(opts.train), opts.limitTrain as number | undefined), holdout)
        : { train: await open(String(opts.train), opts.limitTrain as number | undefined), test: await open(String(opts.test), opts.limitTest as number | undefined) };
    const started = Date.now();
    const log = (msg: string) => process.stderr.write(`eval: ${msg}\n`);
    if (variants) {
      const report = await evaluateVariants({ modelDir: config.model, train, test, k: opts.k as number, temperature: opts.temperature as number, probe: opts.probe !== false, log });
      print({ ...report, backend: backend.name, seconds: (Date.now() - started) / 1000 }, opts.out as string | undefined);
      return;
    }
    const report = await evaluateOffline({
      modelDir: config.model,
      train,
      test,
      k: opts.k as number,
      temperature: opts.temperature as number,
      baselines: opts.baselines !== false,
      probe: opts.probe !== false,
      efs: opts.ef as number[],
      workers: config.workers,
      backend: config.backend === 'auto' ? backend.name : config.backend,
      convKernels: config.convKernels,
      output: opts.output as string | undefined,
      tta: config.tta,
      log,
    });
    if (opts.report) {
      const file = await writeReport(String(opts.report), { report, train, test, modelDir: config.model, testVectors: report.testVectors!, dim: report.dim! });
      process.stderr.write(`eval: report written to ${file}\n`);
    }
    const { neighbours: _n, testVectors: _v, ...printable } = report;
    print({ ...printable, backend: backend.name, seconds: (Date.now() - started) / 1000 }, opts.out as string | undefined);
  });
  return cmd;
}

/** The report on stdout, then in `out` when given (stdout first: a failed write keeps the figures). */
function print(report: object, out: string | undefined): void {
  const text = JSON.stringify(report, null, 2);
  process.stdout.write(text + '\n');
  if (out) fs.writeFileSync(out, text + '\n');
}

/** `file` can be written: not a folder, its folder created if missing and writable. */
function writableFile(file: string, option: string): void {
  if (fs.statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new Error(`${option} ${file} is a folder; give a file name`);
  writableFolder(path.dirname(path.resolve(file)), option);
}

function writableFolder(dir: string, option: string): void {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (stat && !stat.isDirectory()) throw new Error(`${option} ${dir} is a file, not a folder`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    throw new Error(`${option}: cannot write to ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}
