/**
 * `bulkhead run [--rm] [-i] [-t] [-e K=V]... [-m SIZE] [--cpus N] [--name N] [--label K=V]... [-d]
 * IMAGE [-- CMD...]`: a zone from IMAGE, with Docker's habits. It exits with the command's status
 * (128 + the signal when it was killed).
 *
 * With a CMD the zone starts as a sandbox and CMD runs in it connected to this terminal (stdin
 * with -i, a tty in raw mode with -t, resized with the window); without one the image's own
 * command runs as the zone's main process and its console is shown. Without -d the zone lives as
 * long as this command (--rm is then implied). With -d a supervising process (`__supervise`) owns
 * the zone, this command prints its id and exits; --rm then removes the zone when it exits.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { AbortedError, InvalidConfigError } from '../errors';
import { errorFromWire } from '../server/wire';
import { ZoneStartError } from '../zone/errors';
import type { ZoneSpec } from '../zone/spec';
import type { Zone } from '../zone/zone';
import { runtimeDir } from '../util/runtime-dir';
import { defineCommand, integerFlag } from './args';
import { REPORT_FD } from './supervise';
import { attachTerminal, exitStatus, noteBackend, parseMemory, parsePairs, terminalSize, zoneSource } from './zone-common';

export const command = defineCommand({
  name: 'run',
  summary: "run a command in a new zone from IMAGE; exits with the command's status",
  args: 'IMAGE [-- CMD [ARG...]]',
  options: {
    rm: { type: 'boolean', description: 'remove the zone when it exits (always so without -d)' },
    interactive: { type: 'boolean', short: 'i', description: 'connect stdin' },
    tty: { type: 'boolean', short: 't', description: 'give the command a terminal (raw mode, resized with this window)' },
    env: { type: 'string', short: 'e', multiple: true, value: 'K=V', description: 'set an environment variable (K alone: from here)' },
    memory: { type: 'string', short: 'm', value: 'SIZE', description: 'guest memory: 256 (MiB), 128m, 1g (default 256m)' },
    cpus: { type: 'string', value: 'N', description: 'vCPUs (default 1)' },
    name: { type: 'string', value: 'NAME', description: 'the zone name (default zone-<id>)' },
    label: { type: 'string', multiple: true, value: 'K=V', description: 'a label on the zone' },
    user: { type: 'string', short: 'u', value: 'USER', description: "run as uid[:gid] or name[:group] (default: the image's user)" },
    workdir: { type: 'string', short: 'w', value: 'DIR', description: "working directory (default: the image's)" },
    detach: { type: 'boolean', short: 'd', description: 'run in the background under a supervising process; print the zone id' },
  },
  positionals: { min: 1, max: 1 },
  stopAtPositional: true,
  async run({ values, positionals, rest }) {
    const image = positionals[0]!;
    const argv = rest;
    const spec: ZoneSpec = {
      image,
      env: parsePairs('--env', values.env, true),
      labels: parsePairs('--label', values.label, false),
      ...(values.memory !== undefined ? { memoryMiB: parseMemory('--memory', values.memory) } : {}),
      ...(values.cpus !== undefined ? { vcpus: integerFlag('cpus', values.cpus, 1) } : {}),
      ...(values.name !== undefined ? { name: values.name } : {}),
      ...(values.user !== undefined ? { user: values.user } : {}),
      ...(values.workdir !== undefined ? { cwd: values.workdir } : {}),
    };
    if (values.detach) {
      if (values.interactive || values.tty) throw new InvalidConfigError('-d', '-i/-t', 'a detached zone without a terminal (-d cannot be combined with -i or -t)');
      return detached({ ...spec, cmd: argv.length ? argv : 'image' }, values.rm ?? false);
    }
    if ((values.interactive || values.tty) && argv.length === 0) {
      throw new InvalidConfigError('CMD', '', 'a command after the image (-i and -t connect this terminal to a command you name: run -it busybox -- sh)');
    }
    return foreground(spec, argv, { interactive: values.interactive ?? false, tty: values.tty ?? false });
  },
});

async function foreground(spec: ZoneSpec, argv: string[], term: { interactive: boolean; tty: boolean }): Promise<number> {
  const source = await zoneSource();
  const ac = new AbortController();
  const onSignal = () => ac.abort();
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  let zone: Zone | undefined;
  try {
    try {
      zone = await source.create({ ...spec, ...(argv.length ? { keepAlive: true } : { cmd: 'image' }), signal: ac.signal });
    } catch (err) {
      if (ac.signal.aborted || err instanceof AbortedError) return 130;
      throw err;
    } finally {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    }
    noteBackend(zone);
    if (argv.length === 0) return await showMain(zone);
    // Docker's rule: the command is the image's Entrypoint followed by the arguments given.
    const command = [...(spec.entrypoint ?? zone.imageConfig?.entrypoint ?? []), ...argv];
    const proc = zone.spawn(command, {
      ...(spec.env ? { env: { ...spec.env } } : {}),
      ...(spec.user !== undefined ? { user: spec.user } : {}),
      ...(spec.cwd !== undefined ? { cwd: spec.cwd } : {}),
      ...(term.tty ? { tty: terminalSize() } : {}),
    });
    return exitStatus(await attachTerminal(proc, term));
  } finally {
    await zone?.destroy();
    source.close();
  }
}

/** The image's own command as the main process: its console until the zone ends, then its status. */
async function showMain(zone: Zone): Promise<number> {
  const ac = new AbortController();
  const onSignal = () => void zone.stop();
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  const printing = (async () => {
    for await (const entry of zone.logs({ follow: true, signal: ac.signal })) {
      if (entry.source === 'console') process.stdout.write(entry.text + '\n');
    }
  })().catch(() => undefined);
  try {
    const exit = await zone.wait();
    await new Promise((r) => setTimeout(r, 250)); // the last console lines
    ac.abort();
    await printing;
    if (exit.main) return exitStatus(exit.main);
    if (exit.reason === 'failed') process.stderr.write(`bulkhead run: zone ${zone.name} failed: ${exit.failure ?? 'unknown'}\n`);
    return exit.reason === 'stopped' ? 130 : 1;
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}

/** -d: a server owns the zone (BULKHEAD_SERVER), or a supervising process started here does. */
async function detached(spec: ZoneSpec, rm: boolean): Promise<number> {
  const source = await zoneSource();
  if (source.served) {
    try {
      const zone = await source.create(spec);
      noteBackend(zone);
      process.stdout.write(`${zone.id}\n`);
      return 0;
    } finally {
      source.close();
    }
  }
  source.close();
  const logFile = path.join(runtimeDir('supervisors'), `${Date.now()}-${process.pid}.log`);
  const log = openSync(logFile, 'a', 0o600);
  const child = spawn(process.execPath, [path.join(__dirname, 'main.js'), '__supervise', '--spec', JSON.stringify(spec), ...(rm ? ['--rm'] : [])], {
    detached: true,
    stdio: ['ignore', log, log, 'pipe'],
  });
  closeSync(log);
  const line = await new Promise<string>((resolve) => {
    let text = '';
    const pipe = child.stdio[REPORT_FD] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => (text += d));
    pipe.once('close', () => resolve(text.trim()));
    child.once('exit', () => setTimeout(() => resolve(text.trim()), 100));
  });
  child.unref();
  (child.stdio[REPORT_FD] as NodeJS.ReadableStream & { destroy(): void }).destroy();
  if (line.startsWith('ZONE ')) {
    process.stdout.write(`${line.slice(5)}\n`);
    return 0;
  }
  if (line.startsWith('ERROR ')) throw errorFromWire(JSON.parse(line.slice(6)));
  const tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n');
  throw new ZoneStartError('launch', `the zone's supervising process ended without reporting; the end of its log (${logFile}): ${tail}`);
}
