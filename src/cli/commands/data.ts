/**
 * `likeness data fetch fashion-mnist`: the one command that downloads anything. It says where from,
 * verifies every file, and is never needed where Debian's dataset-fashion-mnist is installed.
 */
import { Command, Option } from 'commander';
import * as os from 'node:os';
import * as path from 'node:path';
import { httpUrl } from '../../config/arg-parsers';
import { fetchFashionMnist, FASHION_MNIST_MIRROR } from '../../data/fetch';

export function dataCommand(): Command {
  const data = new Command('data').description('datasets: download one for machines without a local copy');
  data
    .command('fetch')
    .description('download Fashion-MNIST (4 files, 30 MB) and verify each against its sha256')
    .argument('<dataset>', 'dataset name (fashion-mnist)')
    .addOption(new Option('--dir <dir>', 'where to put the files').env('LIKENESS_DATA_FETCH_DIR').default(path.join(os.homedir(), '.cache', 'likeness', 'fashion-mnist')))
    .addOption(new Option('--mirror <url>', 'base URL of the files').env('LIKENESS_DATA_FETCH_MIRROR').argParser(httpUrl).default(FASHION_MNIST_MIRROR))
    .action(async (dataset: string, opts: { dir: string; mirror: string }) => {
      if (dataset !== 'fashion-mnist') throw new Error(`unknown dataset '${dataset}' (known: fashion-mnist)`);
      const dir = path.resolve(opts.dir);
      const mirror = opts.mirror.endsWith('/') ? opts.mirror : `${opts.mirror}/`;
      const report = await fetchFashionMnist(dir, mirror, (line) => process.stderr.write(`${line}\n`));
      for (const r of report) process.stdout.write(`${r.state.padEnd(10)} ${path.join(dir, r.name)} (${r.bytes} bytes, verified)\n`);
      process.stdout.write(`use it as --data idx:fashion-mnist:train:${dir} (or :test:${dir})\n`);
    });
  return data;
}
