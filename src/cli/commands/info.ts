/** likeness info: backend, model and catalogue summary. */
import { catalogFile } from '../../catalog/open';
import { Command } from 'commander';
import * as fs from 'node:fs';
import { SqliteCatalog } from '../../catalog/sqlite-catalog';
import { catalogOptions, toConfig } from '../../config/config';
import { modelIdOf, readManifest } from '../../model/model-dir';
import { initBackend } from '../../runtime/backend';

export function infoCommand(): Command {
  const cmd = new Command('info').description('show the tfjs backend, the model and the catalogue');
  for (const o of catalogOptions()) cmd.addOption(o);
  cmd.action(async (opts: Record<string, unknown>) => {
    const config = toConfig(opts);
    const backend = await initBackend(config.backend, { convKernels: config.convKernels });
    const manifest = readManifest(config.model);
    const modelId = modelIdOf(config.model, manifest);
    const dbFile = catalogFile(config.dataDir);
    let catalog: unknown = { path: dbFile, exists: false };
    if (config.store !== 'embedded') {
      // Never print the URL: it may carry a password.
      catalog = { store: 'postgres', host: new URL(config.store).host };
    } else if (fs.existsSync(dbFile)) {
      const db = new SqliteCatalog(dbFile);
      catalog = { path: dbFile, exists: true, ...db.stats(modelId) };
      db.close();
    }
    const info = {
      node: process.version,
      backend,
      model: { dir: config.model, id: modelId, name: manifest.name, input: manifest.input, embedding: manifest.embedding, encoder: manifest.encoder, training: manifest.training, quality: manifest.quality },
      catalog,
    };
    process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
  });
  return cmd;
}
