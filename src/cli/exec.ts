/**
 * `bulkhead exec [-i] [-t] [-e K=V]... [-u USER] [-w DIR] ZONE CMD...`: runs a command in a
 * running zone — one this process does not own is reached through its api.sock — connected to
 * this terminal, and exits with its status.
 */
import { InvalidConfigError } from '../errors';
import { defineCommand } from './args';
import { attachTerminal, detach, exitStatus, parsePairs, terminalSize, zoneSource } from './zone-common';

export const command = defineCommand({
  name: 'exec',
  summary: "run a command in a running zone; exits with the command's status",
  args: 'ZONE CMD [ARG...]',
  options: {
    interactive: { type: 'boolean', short: 'i', description: 'connect stdin' },
    tty: { type: 'boolean', short: 't', description: 'give the command a terminal' },
    env: { type: 'string', short: 'e', multiple: true, value: 'K=V', description: 'set an environment variable (K alone: from here)' },
    user: { type: 'string', short: 'u', value: 'USER', description: "uid[:gid] or name[:group] (default: the zone's user)" },
    workdir: { type: 'string', short: 'w', value: 'DIR', description: 'working directory inside the zone' },
  },
  positionals: { min: 1, max: 1 },
  stopAtPositional: true,
  async run({ values, positionals, rest }) {
    if (rest.length === 0) throw new InvalidConfigError('CMD', '', 'a command to run after the zone: bulkhead exec ZONE CMD [ARG...]');
    const source = await zoneSource();
    try {
      const zone = await source.attach(positionals[0]!);
      try {
        const proc = zone.spawn(rest, {
          env: parsePairs('--env', values.env, true),
          ...(values.user !== undefined ? { user: values.user } : {}),
          ...(values.workdir !== undefined ? { cwd: values.workdir } : {}),
          ...(values.tty ? { tty: terminalSize() } : {}),
        });
        return exitStatus(await attachTerminal(proc, { interactive: values.interactive ?? false, tty: values.tty ?? false }));
      } finally {
        detach(zone);
      }
    } finally {
      source.close();
    }
  },
});
