/** likeness search <image>: query the catalogue files directly and print the results as JSON. */
import { Command } from 'commander';
import { intIn } from '../../config/arg-parsers';
import { envOption } from '../env-option';
import * as fs from 'node:fs';
import { catalogOptions, toConfig } from '../../config/config';
import { catalogFile, openLikeness } from '../../catalog/open';
import { createLogger } from '../logger';

export function searchCommand(): Command {
  const cmd = new Command('search').description('find catalogue items similar to an image file').argument('<image>');
  for (const o of catalogOptions()) cmd.addOption(o);
  cmd.addOption(envOption('SEARCH', '-k, --k <n>', 'number of results').argParser(intIn(1, 1000)).default(10));
  cmd.action(async (image: string, opts: Record<string, unknown>) => {
    const config = { ...toConfig(opts), workers: 0 };
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(image);
    } catch (err) {
      throw new Error(`cannot read ${image}: ${(err as NodeJS.ErrnoException).code === 'EISDIR' ? 'it is a folder; search takes one image file' : (err as Error).message}`);
    }
    // Opening would create an empty catalogue: a mistyped --data-dir must not answer "no results".
    if (config.store === 'embedded' && !fs.existsSync(catalogFile(config.dataDir))) {
      throw new Error(`no catalogue in ${config.dataDir}: index images first (likeness index <folder> --data-dir ${config.dataDir}), or pass the --data-dir you indexed into`);
    }
    const likeness = await openLikeness(config, createLogger('warn'));
    try {
      const result = await likeness.service.search({ image: bytes, k: opts.k as number });
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      const stats = await likeness.service.stats();
      if (stats.items > 0 && stats.searchable === 0) {
        process.stderr.write(`the catalogue holds ${stats.items} items, none embedded by this model (${likeness.embedder.modelId}): search with the --model they were indexed with, or index them again with this one\n`);
      }
    } finally {
      await likeness.close();
    }
  });
  return cmd;
}
