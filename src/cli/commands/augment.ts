/**
 * `likeness augment <image...> --out grid.png`: shows what the training augmentations do to your
 * images: one row per image (repeated with --rows), the image first, then --views augmented views.
 * The augmentation flags are shared with `likeness train` (augmentOptions / parseAugmentOptions).
 */
import { Command, Option } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { writeViewGrid } from '../../augment/grid';
import { multiView, pixelsToUnit, ViewAugmentConfig } from '../../augment/views';
import { decodeFileToPixels } from '../../data/decode';
import { BACKEND_CHOICES, BackendChoice, initBackend } from '../../runtime/backend';
import { int, intIn, num, pair } from '../../config/arg-parsers';
import { envOption } from '../env-option';

/** The augmentation knobs as options (defaults: SimCLR's, see src/augment/views.ts). */
export function augmentOptions(prefix: string): Option[] {
  const o = (flags: string, d: string, parse: (v: string) => unknown): Option => envOption(prefix, flags, d).argParser(parse);
  return [
    o('--crop-scale <lo,hi>', 'random resized crop area fraction (default 0.08,1)', pair),
    o('--crop-ratio <lo,hi>', 'random resized crop aspect ratio (default 0.75,1.333)', pair),
    o('--hflip <p>', 'horizontal flip probability (default 0.5)', num),
    o('--jitter-prob <p>', 'colour jitter probability (default 0.8)', num),
    o('--jitter-strength <s>', 'colour distortion strength multiplying the four amounts (default 1)', num),
    o('--brightness <b>', 'brightness jitter amount (default 0.8)', num),
    o('--contrast <c>', 'contrast jitter amount (default 0.8)', num),
    o('--saturation <s>', 'saturation jitter amount, RGB only (default 0.8)', num),
    o('--hue <h>', 'hue jitter amount in turns, RGB only (default 0.2)', num),
    o('--gray-prob <p>', 'random grayscale probability, RGB only (default 0.2)', num),
    o('--blur-prob <p>', 'Gaussian blur probability (default 0.5)', num),
    o('--blur-sigma <lo,hi>', 'Gaussian blur sigma range in pixels (default 0.1,2)', pair),
    o('--solarize-prob <p>', 'solarization probability (default 0)', num),
    o('--erase-prob <p>', 'random erasing probability: a rectangle filled with noise (default 0)', num),
    o('--erase-scale <lo,hi>', 'random erasing area fraction (default 0.02,0.33)', pair),
  ];
}

export function parseAugmentOptions(o: Record<string, unknown>): Partial<ViewAugmentConfig> {
  const cfg: Partial<ViewAugmentConfig> = {
    cropScale: o.cropScale as [number, number] | undefined,
    cropRatio: o.cropRatio as [number, number] | undefined,
    hflipProb: o.hflip as number | undefined,
    jitterProb: o.jitterProb as number | undefined,
    jitterStrength: o.jitterStrength as number | undefined,
    brightness: o.brightness as number | undefined,
    contrast: o.contrast as number | undefined,
    saturation: o.saturation as number | undefined,
    hue: o.hue as number | undefined,
    grayscaleProb: o.grayProb as number | undefined,
    blurProb: o.blurProb as number | undefined,
    blurSigma: o.blurSigma as [number, number] | undefined,
    solarizeProb: o.solarizeProb as number | undefined,
    eraseProb: o.eraseProb as number | undefined,
    eraseScale: o.eraseScale as [number, number] | undefined,
  };
  return Object.fromEntries(Object.entries(cfg).filter(([, v]) => v !== undefined)) as Partial<ViewAugmentConfig>;
}

export interface AugmentGridOptions {
  out: string;
  views: number;
  rows: number;
  size: number;
  channels: 1 | 3;
  seed: number;
  augment: Partial<ViewAugmentConfig>;
}

/** Decodes the images and writes the grid. Returns the grid's [rows, columns]. */
export async function writeAugmentGrid(images: string[], o: AugmentGridOptions): Promise<[number, number]> {
  const per = o.size * o.size * o.channels;
  const decoded = await Promise.all(images.map((f) => decodeFileToPixels(f, { size: o.size, channels: o.channels })));
  const rows = images.length * o.rows;
  const pixels = new Uint8Array(rows * per);
  decoded.forEach((px, i) => {
    for (let r = 0; r < o.rows; r++) pixels.set(px, (i * o.rows + r) * per);
  });
  const x = pixelsToUnit(pixels, rows, o.size, o.channels);
  const views = multiView(x, { views: o.views, augment: o.augment }, o.seed);
  try {
    await writeViewGrid(o.out, [x, ...views]);
  } finally {
    tf.dispose([x, ...views]);
  }
  return [rows, 1 + o.views];
}

export function augmentCommand(): Command {
  const cmd = new Command('augment')
    .description('write a PNG grid of augmented views of images (one row per image, original first)')
    .argument('<image...>', 'image files')
    .addOption(envOption('AUGMENT', '--out <file>', 'PNG file to write').makeOptionMandatory())
    .addOption(envOption('AUGMENT', '--views <n>', 'views per row').argParser(intIn(1, 64)).default(8))
    .addOption(envOption('AUGMENT', '--rows <n>', 'rows per image').argParser(intIn(1, 64)).default(1))
    .addOption(envOption('AUGMENT', '--size <px>', 'side of the views in pixels').argParser(intIn(8, 1024)).default(96))
    .addOption(envOption('AUGMENT', '--channels <n>', 'colour channels, 1 or 3').choices(['1', '3']).default('3'))
    .addOption(envOption('AUGMENT', '--seed <n>', 'random seed (same seed, same views)').argParser(int).default(0))
    .addOption(envOption('AUGMENT', '--backend <name>', 'tfjs backend').choices(BACKEND_CHOICES as string[]).default('auto'));
  for (const o of augmentOptions('AUGMENT')) cmd.addOption(o);
  cmd.action(async (images: string[], opts: Record<string, unknown>) => {
    await initBackend(opts.backend as BackendChoice);
    const [rows, cols] = await writeAugmentGrid(images, {
      out: opts.out as string,
      views: opts.views as number,
      rows: opts.rows as number,
      size: opts.size as number,
      channels: Number(opts.channels) as 1 | 3,
      seed: opts.seed as number,
      augment: parseAugmentOptions(opts),
    });
    process.stdout.write(`wrote ${opts.out as string}: ${rows} row(s) x ${cols} column(s)\n`);
  });
  return cmd;
}
