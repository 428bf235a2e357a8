/**
 * `bulkhead host run [--memory MiB] [--cpus N] [--kernel PATH] [--console] -- CMD...`: boot the
 * emulated host, run CMD inside with its output streamed, stop, and exit with CMD's exit code.
 */
import { EmulatedHost, type EmulatedHostOptions } from '../host/emulated';

const USAGE = `usage: bulkhead host run [--memory MiB] [--cpus N] [--kernel PATH] [--console] [--cwd DIR] -- CMD [ARG...]`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'run') {
    process.stderr.write(`${USAGE}\n`);
    return sub === '-h' || sub === '--help' ? 0 : 2;
  }
  const dash = rest.indexOf('--');
  const flags = dash >= 0 ? rest.slice(0, dash) : [];
  const command = dash >= 0 ? rest.slice(dash + 1) : rest;
  const opts: EmulatedHostOptions = {};
  let cwd: string | undefined;
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i]!;
    const value = flags[i + 1];
    if (flag === '--memory' && value) (opts.memoryMiB = Number(value)), i++;
    else if (flag === '--cpus' && value) (opts.cpus = Number(value)), i++;
    else if (flag === '--kernel' && value) (opts.kernel = value), i++;
    else if (flag === '--cwd' && value) (cwd = value), i++;
    else if (flag === '--console') opts.onConsole = (t) => process.stderr.write(t);
    else {
      process.stderr.write(`bulkhead host: unknown or incomplete option ${JSON.stringify(flag)}\n${USAGE}\n`);
      return 2;
    }
  }
  if (command.length === 0) {
    process.stderr.write(`bulkhead host: no command given\n${USAGE}\n`);
    return 2;
  }
  const host = await EmulatedHost.start(opts);
  try {
    if (process.stderr.isTTY) process.stderr.write(`[emulated host up in ${(host.bootMs / 1000).toFixed(1)} s]\n`);
    const result = await host.run(command, {
      cwd,
      onStdout: (d) => process.stdout.write(d),
      onStderr: (d) => process.stderr.write(d),
    });
    if (result.exitCode === null) return 128 + (signalNumber(result.signal) ?? 1);
    return result.exitCode;
  } finally {
    await host.stop();
  }
}

function signalNumber(name: string | null): number | undefined {
  if (!name) return undefined;
  return (require('node:os') as typeof import('node:os')).constants.signals[name as NodeJS.Signals];
}
