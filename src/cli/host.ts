/**
 * `bulkhead host run|start|stop|status`: the emulated virtualization host (QEMU TCG with nested
 * SVM). `run` boots one for a command, or uses the shared one that `start` keeps running in the
 * background (a keeper, see src/host/emulated/keeper.ts).
 */
import * as os from 'node:os';
import { EmulatedHost, ensureKeeper, liveKeeper, SharedEmulatedHost, sharedHostDir, sharedHostOptions, stopKeeper, type HostSession } from '../host/emulated';
import { defineCommand, defineGroup, integerFlag } from './args';


const bootOptions = {
  memory: { type: 'string', short: 'm', value: 'MiB', description: 'guest RAM of the emulated host (default 4096)' },
  cpus: { type: 'string', value: 'N', description: 'its vCPUs (default 2)' },
  kernel: { type: 'string', value: 'PATH', description: 'host kernel (default: the cached `host` kernel)' },
} as const;

const run = defineCommand({
  name: 'host run',
  summary: 'run a command inside the emulated host, streaming its output; exits with its code',
  args: '[--] CMD [ARG...]',
  options: {
    ...bootOptions,
    console: { type: 'boolean', description: "copy the emulated host's serial console to stderr" },
    cwd: { type: 'string', value: 'DIR', description: 'working directory inside (default: this one)' },
    fresh: { type: 'boolean', description: 'boot a host for this command even when a shared one runs' },
  },
  positionals: { min: 1, max: 1 },
  stopAtPositional: true,
  async run({ values, positionals, rest }) {
    const command = [...positionals, ...rest];
    let host: HostSession;
    if (!values.fresh && liveKeeper(sharedHostDir())) {
      host = await SharedEmulatedHost.connect(sharedHostDir());
    } else {
      const booted = await EmulatedHost.start({
        memoryMiB: integerFlag('memory', values.memory, 256),
        cpus: integerFlag('cpus', values.cpus, 1, 16),
        kernel: values.kernel,
        buildKernel: true,
        onConsole: values.console ? (t) => process.stderr.write(t) : undefined,
      });
      if (process.stderr.isTTY) process.stderr.write(`[emulated host up in ${(booted.bootMs / 1000).toFixed(1)} s]\n`);
      host = booted;
    }
    try {
      const proc = host.spawn(command, { cwd: values.cwd, stdin: process.stdin.isTTY ? 'ignore' : 'pipe' });
      if (proc.stdin) process.stdin.pipe(proc.stdin);
      proc.stdout.pipe(process.stdout);
      proc.stderr.pipe(process.stderr);
      const end = await proc.wait();
      process.stdin.unpipe();
      process.stdin.destroy();
      if (end.exitCode === null) return 128 + (os.constants.signals[end.signal as NodeJS.Signals] ?? 1);
      return end.exitCode;
    } finally {
      await host.stop();
    }
  },
});

const start = defineCommand({
  name: 'host start',
  summary: 'boot a shared emulated host in the background for later `host run` calls and zones',
  options: {
    ...bootOptions,
    'idle-timeout': { type: 'string', value: 'SECONDS', description: 'stop after this long without a client (default: never)' },
  },
  async run({ values }) {
    const idle = integerFlag('idle-timeout', values['idle-timeout'], 1);
    const info = await ensureKeeper({
      dir: sharedHostDir(),
      idleTimeoutMs: idle === undefined ? undefined : idle * 1000,
      host: {
        ...sharedHostOptions(),
        ...(values.memory ? { memoryMiB: integerFlag('memory', values.memory, 256) } : {}),
        ...(values.cpus ? { cpus: integerFlag('cpus', values.cpus, 1, 16) } : {}),
        kernel: values.kernel,
      },
    });
    process.stdout.write(`emulated host running (keeper pid ${info.pid}, ${info.kernelRelease}, booted in ${(info.bootMs / 1000).toFixed(1)} s)\n`);
    return 0;
  },
});

const stop = defineCommand({
  name: 'host stop',
  summary: 'stop the shared emulated host',
  options: {},
  async run() {
    const running = liveKeeper(sharedHostDir());
    await stopKeeper(sharedHostDir());
    process.stdout.write(running ? 'emulated host stopped\n' : 'no shared emulated host was running\n');
    return 0;
  },
});

const status = defineCommand({
  name: 'host status',
  summary: 'whether a shared emulated host is running; exit 1 if not',
  options: { json: { type: 'boolean', description: 'print the keeper record as JSON' } },
  async run({ values }) {
    const info = liveKeeper(sharedHostDir());
    if (values.json) process.stdout.write(JSON.stringify(info ?? null) + '\n');
    else process.stdout.write(info ? `running: keeper pid ${info.pid}, QEMU pid ${info.qemuPid}, ${info.kernelRelease}\n` : 'not running\n');
    return info ? 0 : 1;
  },
});

export const command = defineGroup('host', 'the emulated virtualization host (QEMU TCG with nested SVM: hardware-semantics /dev/kvm)', [
  run,
  start,
  stop,
  status,
]);
