/** likeness index <folder>: add every image under a folder to the catalogue, with a progress bar. */
import { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { catalogOptions, toConfig } from '../../config/config';
import { importFolder } from '../../catalog/folder-import';
import { openLikeness } from '../../catalog/open';
import { createLogger } from '../logger';

export function indexCommand(): Command {
  const cmd = new Command('index').description('index every image under a folder (id = relative path); reruns skip unchanged files').argument('<folder>');
  for (const o of catalogOptions()) cmd.addOption(o);
  cmd.option('--batch <n>', 'images per batch', (v) => Number(v), 256);
  cmd.action(async (folder: string, opts: Record<string, unknown>) => {
    const config = toConfig(opts);
    const likeness = await openLikeness(config, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel));
    const bar = new SingleBar({ format: 'indexing [{bar}] {value}/{total} | {speed} img/s | ETA {eta_formatted} | failed {failed}', hideCursor: true }, Presets.shades_classic);
    const started = Date.now();
    let barStarted = false;
    try {
      const result = await importFolder(likeness.service, folder, {
        batch: opts.batch as number,
        onProgress: (p) => {
          if (!barStarted) {
            bar.start(p.total, 0, { speed: 0, failed: 0 });
            barStarted = true;
          }
          bar.update(p.done, { speed: Math.round(p.done / ((Date.now() - started) / 1000)), failed: p.failed.length });
        },
      });
      bar.stop();
      for (const f of result.failed) process.stderr.write(`failed: ${f.id}: ${f.code}: ${f.message}\n`);
      process.stdout.write(`${JSON.stringify({ total: result.total, added: result.added, skipped: result.skipped, failed: result.failed.length })}\n`);
      process.exitCode = result.failed.length > 0 ? 2 : 0;
    } finally {
      await likeness.close();
    }
  });
  return cmd;
}
