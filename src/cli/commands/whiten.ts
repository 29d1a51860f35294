/** likeness whiten: fit PCA whitening of a model's features on unlabelled images, save as a new model. */
import { Command, Option } from 'commander';
import { catalogOptions, toConfig } from '../../config/config';
import { openDataset } from '../../data/open';
import { readManifest } from '../../model/model-dir';
import { WHITEN_SOURCES, WhitenSource, whitenModel } from '../../model/whiten';
import { initBackend } from '../../runtime/backend';
import { bool, intIn, numIn } from '../../config/arg-parsers';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MANIFEST_JSON } from '../../model/manifest';

const env = (flags: string, description: string, name: string) => new Option(flags, description).env(name);

export function whitenCommand(): Command {
  const cmd = new Command('whiten').description('fit PCA whitening of a model\'s features on unlabelled images (e.g. your catalogue) and save the model with a "whitened" output, which it then serves');
  for (const o of catalogOptions().filter((o) => ['--model', '--backend', '--conv-kernels', '--log-level'].some((f) => o.flags.startsWith(f)))) cmd.addOption(o);
  cmd.addOption(env('--data <spec>', 'images to fit on: idx:fashion-mnist:train, a folder, or a .csv/.jsonl manifest (labels unused)', 'LIKENESS_WHITEN_DATA').default('idx:fashion-mnist:train'));
  cmd.addOption(env('--out <dir>', 'model directory to write (may not be --model)', 'LIKENESS_WHITEN_OUT').makeOptionMandatory());
  cmd.addOption(env('--source <name>', 'features to whiten: the encoder output, the projection, or a grid of the last feature map', 'LIKENESS_WHITEN_SOURCE').choices([...WHITEN_SOURCES]).default('encoder'));
  cmd.addOption(env('--grid <n>', 'cells per side for --source grid', 'LIKENESS_WHITEN_GRID').argParser(intIn(1)).default(3));
  cmd.addOption(env('--dims <n>', "directions kept (default: the source's size, at most 256)", 'LIKENESS_WHITEN_DIMS').argParser(intIn(1)));
  cmd.addOption(env('--power <p>', '0.5 whitens fully, 0 only rotates and truncates (PCA)', 'LIKENESS_WHITEN_POWER').argParser(numIn(0, 1)).default(0.5));
  cmd.addOption(env('--limit <n>', 'fit on the first n images only', 'LIKENESS_WHITEN_LIMIT').argParser(intIn(1)));
  cmd.addOption(env('--overwrite [bool]', 'replace a model already in --out (refused without it)', 'LIKENESS_WHITEN_OVERWRITE').argParser(bool).default(false));
  cmd.action(async (opts: Record<string, unknown>) => {
    const config = toConfig(opts);
    const outDir = String(opts.out);
    if (fs.existsSync(path.join(outDir, MANIFEST_JSON)) && opts.overwrite !== true && path.resolve(outDir) !== path.resolve(config.model)) {
      throw new Error(`${outDir} already holds a model: pass --overwrite to replace it, or choose another --out`);
    }
    await initBackend(config.backend, { convKernels: config.convKernels });
    const manifest = readManifest(config.model);
    const data = await openDataset(String(opts.data), { size: manifest.input.size, channels: manifest.input.channels, limit: opts.limit as number | undefined });
    const started = Date.now();
    const out = await whitenModel(config.model, data, String(opts.out), {
      source: opts.source as WhitenSource,
      grid: opts.grid as number,
      dims: opts.dims as number | undefined,
      power: opts.power as number,
      log: (msg) => process.stderr.write(`whiten: ${msg}\n`),
    });
    const { whitening } = out;
    process.stdout.write(JSON.stringify({ model: out.id, out: opts.out, images: out.images, dims: whitening.eigenvalues.length, keptVariance: whitening.keptVariance, duplicateThreshold: out.duplicates.threshold, seconds: (Date.now() - started) / 1000 }) + '\n');
  });
  return cmd;
}
