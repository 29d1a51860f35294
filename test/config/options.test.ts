/** Server and catalogue options: every value is checked once, at start, with the option named. */
import { Command } from 'commander';
import * as path from 'path';
import { defaultValSpec, openTrainData, trainOptions } from '../../src/cli/commands/train';
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

describe('train --holdout', () => {
  const FOLDER = path.join(__dirname, '..', 'fixtures', 'fashion-mnist');
  const opts = (extra: Record<string, unknown>) => ({ data: FOLDER, size: 28, channels: '1', valFraction: 0.1, knnBankLimit: 10000, knnValLimit: 10000, knnK: 20, knnT: 0.1, knnEvery: 1, ...extra });

  it('trains on all but the last n images and monitors on those n, the split eval --holdout measures', async () => {
    const { data: all } = await openTrainData(opts({ knn: false }), 0);
    const { data, knn } = await openTrainData(opts({ holdout: 30 }), 0);
    expect(data.count).toBe(all.count - 30);
    expect(knn).not.toBe(false);
    const val = (knn as Exclude<typeof knn, false>).val;
    expect(val.count).toBe(30);
    // The same images, in the same order: the first count-30 for training, the last 30 held out.
    expect(data.ids).toEqual(all.ids!.slice(0, all.count - 30));
    expect(val.ids).toEqual(all.ids!.slice(all.count - 30));
    expect(Array.from(val.labels!)).toEqual(Array.from(all.labels!.slice(all.count - 30)));
    // Held out with the monitor off too: those images are never trained on.
    expect((await openTrainData(opts({ holdout: 30, knn: false }), 0)).data.count).toBe(all.count - 30);
  });

  it('refuses a size that leaves nothing to train on, and a second source of validation images', async () => {
    const { data: all } = await openTrainData(opts({ knn: false }), 0);
    await expect(openTrainData(opts({ holdout: all.count }), 0)).rejects.toThrow(`--holdout must be between 1 and ${all.count - 1}`);
    await expect(openTrainData(opts({ holdout: 0 }), 0)).rejects.toThrow(/--holdout must be between 1/);
    await expect(openTrainData(opts({ holdout: 10, valData: 'idx:fashion-mnist:test' }), 0)).rejects.toThrow(/--holdout and --val-data both name the validation images/);
  });
});
