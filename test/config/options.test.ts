/** Server and catalogue options: every value is checked once, at start, with the option named. */
import { Command } from 'commander';
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

  it.each([
    [['--port', '70000'], {}, /--port.*from 0 to 65535/],
    [[], { PORT: '' }, /PORT.*not a number/], // an empty variable is not port 0 (a random port)
    [[], { PORT: '80x' }, /not a number/],
    [['--rate-limit', '-1'], {}, /--rate-limit.*from 0/],
    // Node fires timers set past 24.8 days after 1 ms: such a timeout would time out every request at once.
    [['--request-timeout', '3000000'], {}, /--request-timeout.*from 0 to 86400/],
    [[], { LIKENESS_SHUTDOWN_GRACE: '1e12' }, /from 0 to 86400/],
    [['--snapshot-every', '1.5'], {}, /--snapshot-every.*not an integer/],
  ] as [string[], Record<string, string>, RegExp][])('refuse %j %j', (args, env, message) => {
    const { config, error } = parse(args, env);
    expect(config).toBeUndefined();
    expect(error).toMatch(message);
  });
});
