/** Server and catalogue options: every value is checked once, at start, with the option named. */
import { Command } from 'commander';
import { defaultValSpec, trainOptions } from '../../src/cli/commands/train';
import { buildProgram } from '../../src/cli/main';
import { catalogOptions, serverOptions, toConfig } from '../../src/config/config';

function parse(args: string[], env: Record<string, string> = {}): { config?: ReturnType<typeof toConfig>; error?: string } {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  const cmd = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
  for (const o of [...catalogOptions(), ...serverOptions()]) cmd.addOption(o);
  try {
    cmd.parse(args, { from: 'user' });
    return { config: toConfig(cmd.opts()) };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    process.env = saved;
  }
}

describe('server options', () => {
  it('take flags and environment variables, flags first', () => {
    expect(parse([]).config).toMatchObject({ port: 8080, requestTimeoutSeconds: 30, shutdownGraceSeconds: 10 });
    expect(parse([], { PORT: '9000' }).config?.port).toBe(9000);
    expect(parse(['--port', '9001'], { PORT: '9000' }).config?.port).toBe(9001);
  });

  it("leave test-time augmentation to the model's manifest unless --tta or LIKENESS_TTA says", () => {
    expect(parse([]).config?.tta).toBeUndefined();
    expect(parse([], { LIKENESS_TTA: 'hflip' }).config?.tta).toBe('hflip');
    expect(parse(['--tta', 'none'], { LIKENESS_TTA: 'hflip' }).config?.tta).toBe('none');
  });

  it.each([
    [['--port', '70000'], {}, /--port.*from 0 to 65535/],
    [[], { PORT: '' }, /PORT.*not a number/], // an empty variable is not port 0 (a random port)
    [[], { PORT: '80x' }, /not a number/],
    [['--rate-limit', '-1'], {}, /--rate-limit.*from 0/],
    // Node fires timers set past 24.8 days after 1 ms: such a timeout would time out every request at once.
    [['--request-timeout', '3000000'], {}, /--request-timeout.*from 0 to 86400/],
    [[], { LIKENESS_SHUTDOWN_GRACE: '1e12' }, /from 0 to 86400/],
    [['--snapshot-every', '1.5'], {}, /--snapshot-every.*not an integer/],
    [[], { LIKENESS_TTA: 'vflip' }, /--tta.*Allowed choices are none, hflip/],
  ] as [string[], Record<string, string>, RegExp][])('refuse %j %j', (args, env, message) => {
    const { config, error } = parse(args, env);
    expect(config).toBeUndefined();
    expect(error).toMatch(message);
  });
});

describe('every command', () => {
  const all = (cmd: Command): Command[] => [cmd, ...cmd.commands.flatMap(all)];

  it('gives every option an environment variable', () => {
    const missing: string[] = [];
    for (const cmd of all(buildProgram())) {
      for (const o of cmd.options) {
        // `--no-x` is the short form of `--x false`, which has the variable.
        const positive = o.negate && cmd.options.find((p) => p.attributeName() === o.attributeName() && !p.negate);
        if (!o.envVar && !positive && o.long !== '--help' && o.long !== '--version') missing.push(`${cmd.name()} ${o.flags}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('reads yes/no variables by value, not by presence', () => {
    const train = (args: string[], env: Record<string, string>) => {
      const saved = { ...process.env };
      Object.assign(process.env, env);
      try {
        const cmd = new Command().exitOverride();
        for (const o of trainOptions()) cmd.addOption(o);
        return cmd.parse([...args, '--data', 'idx:fashion-mnist', '--out', 'x'], { from: 'user' }).opts();
      } finally {
        process.env = saved;
      }
    };
    expect(train([], { LIKENESS_TRAIN_RESUME: 'false', LIKENESS_TRAIN_KNN: 'false' })).toMatchObject({ resume: false, knn: false });
    expect(train([], { LIKENESS_TRAIN_RESUME: 'yes' })).toMatchObject({ resume: true, knn: true });
    expect(train(['--resume', '--no-knn'], {})).toMatchObject({ resume: true, knn: false });
    expect(() => train([], { LIKENESS_TRAIN_RESUME: 'maybe' })).toThrow(/expected true or false, got 'maybe'/);
  });
});

describe('train --val-data default', () => {
  it("is Fashion-MNIST's test split from the folder the training split comes from", () => {
    expect(defaultValSpec('idx:fashion-mnist')).toBe('idx:fashion-mnist:test');
    expect(defaultValSpec('idx:fashion-mnist:train')).toBe('idx:fashion-mnist:test');
    expect(defaultValSpec('idx:fashion-mnist:train:/home/me/.cache/likeness/fashion-mnist')).toBe('idx:fashion-mnist:test:/home/me/.cache/likeness/fashion-mnist');
    expect(defaultValSpec('photos/')).toBeUndefined();
    expect(defaultValSpec('idx:a.gz,b.gz')).toBeUndefined();
  });
});
