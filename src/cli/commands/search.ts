/** likeness search <image>: query the catalogue files directly and print the results as JSON. */
import { Command } from 'commander';
import { intIn } from '../../config/arg-parsers';
import { envOption } from '../env-option';
import * as fs from 'node:fs';
import { catalogOptions, toConfig } from '../../config/config';
import { openLikeness } from '../../catalog/open';
import { createLogger } from '../logger';

export function searchCommand(): Command {
  const cmd = new Command('search').description('find catalogue items similar to an image file').argument('<image>');
  for (const o of catalogOptions()) cmd.addOption(o);
  cmd.addOption(envOption('SEARCH', '-k, --k <n>', 'number of results').argParser(intIn(1, 1000)).default(10));
  cmd.action(async (image: string, opts: Record<string, unknown>) => {
    const config = { ...toConfig(opts), workers: 0 };
    const likeness = await openLikeness(config, createLogger('warn'));
    try {
      const result = await likeness.service.search({ image: fs.readFileSync(image), k: opts.k as number });
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } finally {
      await likeness.close();
    }
  });
  return cmd;
}
