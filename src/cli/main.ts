/** The `likeness` command line. */
import { Command } from 'commander';
import { augmentCommand } from './commands/augment';
import { dataCommand } from './commands/data';
import { evalCommand } from './commands/eval';
import { indexCommand } from './commands/index-folder';
import { infoCommand } from './commands/info';
import { keysCommand } from './commands/keys';
import { searchCommand } from './commands/search';
import { serveCommand } from './commands/serve';
import { trainCommand } from './commands/train';
import { whitenCommand } from './commands/whiten';

export function buildProgram(): Command {
  const program = new Command('likeness')
    .description('Image similarity search: contrastive encoders, HNSW index, quality checks')
    .version(require('../../package.json').version)
    .showHelpAfterError();
  program.addCommand(serveCommand());
  program.addCommand(indexCommand());
  program.addCommand(searchCommand());
  program.addCommand(infoCommand());
  program.addCommand(evalCommand());
  program.addCommand(trainCommand());
  program.addCommand(whitenCommand());
  program.addCommand(augmentCommand());
  program.addCommand(dataCommand());
  program.addCommand(keysCommand());
  return program;
}

export function main(argv: string[] = process.argv): void {
  buildProgram()
    .parseAsync(argv)
    .catch((err: Error) => {
      process.stderr.write(`likeness: ${err.message}\n`);
      process.exit(1);
    });
}

if (require.main === module) main();
