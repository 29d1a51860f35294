import { Option } from 'commander';

/** `--flag <v>` with env LIKENESS_<PREFIX>_<FLAG> (e.g. LIKENESS_TRAIN_CROP_SCALE), so every option of a command has both. */
export function envOption(prefix: string, flags: string, description: string): Option {
  const long = /--([a-z0-9-]+)/.exec(flags)![1];
  return new Option(flags, description).env(`LIKENESS_${prefix}_${long.replace(/-/g, '_').toUpperCase()}`);
}
