// Linux boots through the TypeScript API (bootLinux: vm.loadLinux + serial console + i8042 + power-off
// watch) inside the emulated host, whose nested /dev/kvm can run a stock kernel (this machine's PVM one
// cannot: see host-facts). A small node script (fixtures/boot-linux.js, using the built dist/) does each
// boot and prints JSON; the initramfs holds the e2e guest init (native/tests/guest-init), which prints
// BH-* lines and ends the way its command line says. Skips, saying why, without QEMU or cached kernels.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import type { RunResult } from '../../src/host/emulated';
import { singleInitCpio } from '../../src/util/cpio';
import { emulatedHost, testKernel } from '../support/emulated-host';
import { retryEarlyBootDeath } from './fixtures/early-boot-death';

t.setTimeout(20 * 60_000);

const root = path.join(__dirname, '..', '..');
const out = path.join(root, 'native', 'tests', 'out');
const fixture = path.join(__dirname, 'fixtures', 'boot-linux.js');
const BASE = 'console=ttyS0 reboot=k panic=-1';

interface BootJson {
  reason?: string;
  detail?: string;
  panicked?: boolean;
  consoleTail?: string;
  console?: string;
  markerMs?: number | null;
  durationMs?: number;
  exits?: Array<{ vcpu: number; reason: string; message: string }>;
  bootInfo?: Record<string, unknown>;
  error?: { code?: string; message: string };
  /** The script itself did not end by the run's deadline, before the init's marker. */
  hung?: boolean;
}

/** The initramfs of the e2e guest init, written into `dir` (which the emulated host sees at once). */
function writeInitramfs(dir: string): string | { error: string } {
  const r = spawnSync('make', ['-s', '-C', path.join(root, 'native'), 'guest-init'], { encoding: 'utf8' });
  if (r.status !== 0) return { error: `make guest-init failed: ${(r.stderr || r.stdout).slice(-2000)}` };
  const file = path.join(dir, 'initramfs.cpio');
  writeFileSync(
    file,
    singleInitCpio(readFileSync(path.join(out, 'guest-init', 'init'))),
  );
  return file;
}

function parse(r: RunResult): BootJson {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as BootJson;
  } catch {
    return { error: { message: `no JSON from the fixture (exit ${r.exitCode}): ${r.stdout.slice(-500)} ${r.stderr.slice(-1500)}` } };
  }
}

t.test('Linux boots through the TypeScript API inside the emulated host', async (t) => {
  const host = await emulatedHost(t);
  if (!host) return;
  const zone = await testKernel('zone');
  if (!existsSync(path.join(root, 'dist', 'cjs', 'kvm', 'boot-linux.js'))) {
    return void t.fail('dist/ has no kvm/boot-linux.js: run npm run build first');
  }
  const initrd = writeInitramfs(host.workdir(t));
  if (typeof initrd !== 'string') return void t.fail(initrd.error);

  const times: string[] = [];
  const bootOnce = async (label: string, args: Record<string, unknown>): Promise<BootJson> => {
    const started = Date.now();
    const r = await host.run([process.execPath, fixture, JSON.stringify({ initrd, kernel: zone.vmlinux, ...args })], {
      timeoutMs: 180_000,
    });
    const j = { ...parse(r), hung: r.timedOut && !/^BH-INIT/m.test(r.stderr) };
    times.push(`${label}: marker ${j.markerMs ?? '-'} ms after the script started, VM ran ${j.durationMs ?? '?'} ms until ${j.reason ?? j.error?.code}, command ${Date.now() - started} ms`);
    return j;
  };
  const boot = (label: string, args: Record<string, unknown>): Promise<BootJson> =>
    retryEarlyBootDeath(
      t,
      label,
      () => bootOnce(label, args),
      // `hung`: the script outlived its own 90 s deadline before the marker (a VM the host's KVM could
      // not stop: the keeper replaces such a host).
      (j) => j.hung || ((j.reason === 'shutdown' || j.reason === 'timeout') && !/^BH-INIT/m.test(j.console ?? '')),
    );
  const diag = (j: BootJson) => ({ error: j.error, detail: j.detail, exits: j.exits, tail: j.consoleTail?.slice(-2000) });

  t.test('power-off: the marker arrives through onConsole, the command line is intact', async (t) => {
    const cmdline = `${BASE} bhtag=ts-7 bhaction=poweroff`;
    const j = await boot('vmlinux, poweroff', { cmdline });
    t.equal(j.reason, 'power-off', "reason 'power-off'", diag(j));
    t.match(j.console, /^BH-INIT: hello from the guest\r?$/m, 'the init marker reached onConsole');
    t.match(j.console, /^BH-NPROC: 1\r?$/m);
    t.equal(/^BH-CMDLINE: (.*?)\r?$/m.exec(j.console ?? '')?.[1], cmdline, '/proc/cmdline is what loadLinux wrote');
    t.match(j.exits?.[0]?.message, /power-off/, 'the exits say power-off');
    t.equal(j.bootInfo?.format, 'vmlinux');
    t.equal(j.panicked, false);
  });

  t.test('2 vCPUs, and serial input written from JavaScript reaches the guest', async (t) => {
    const j = await boot('vmlinux, 2 vCPUs, input', {
      cmdline: `${BASE} bhecho=1 bhaction=poweroff`,
      vcpus: 2,
      input: { after: 'BH-READY', text: 'typed in TypeScript\n' },
    });
    t.equal(j.reason, 'power-off', 'power-off', diag(j));
    t.match(j.console, /^BH-NPROC: 2\r?$/m, 'the guest sees 2 CPUs');
    t.match(j.console, /^BH-ECHO: typed in TypeScript\r?$/m, 'the guest read the line from ttyS0');
  });

  t.test("reboot through the i8042 (reboot=k) is 'reset'", async (t) => {
    const j = await boot('reboot=k', { cmdline: `${BASE} bhaction=reboot` });
    t.equal(j.reason, 'reset', "reason 'reset'", diag(j));
    t.match(j.console, /BH-ACTION: reboot/);
  });

  t.test("reboot by triple fault (reboot=t) is 'shutdown'", async (t) => {
    const j = await boot('reboot=t', { cmdline: 'console=ttyS0 reboot=t panic=-1 bhaction=reboot' });
    t.equal(j.reason, 'shutdown', "reason 'shutdown'", diag(j));
  });

  t.test("a kernel panic is 'crash' with the panic among the last console lines", async (t) => {
    const j = await boot('panic: no init', { cmdline: `${BASE} rdinit=/nonexistent` });
    t.equal(j.reason, 'crash', "reason 'crash'", diag(j));
    t.equal(j.panicked, true);
    t.match(j.consoleTail, /Kernel panic - not syncing/, 'consoleTail holds the panic line');
  });

  t.test("init exiting with panic=0 (the kernel hangs after the panic) is still 'crash'", async (t) => {
    const j = await boot('panic=0: init exits', { cmdline: 'console=ttyS0 reboot=k panic=0 bhaction=panic' });
    t.equal(j.reason, 'crash', "reason 'crash' (stopped after the panic grace period)", diag(j));
    t.match(j.consoleTail, /Attempted to kill init/);
  });

  t.test('PVH entry with 2 vCPUs', async (t) => {
    const j = await boot('PVH, 2 vCPUs', { entry: 'pvh', vcpus: 2, cmdline: `${BASE} bhaction=poweroff` });
    t.equal(j.reason, 'power-off', 'power-off', diag(j));
    t.equal(j.bootInfo?.entry, 'pvh');
    t.match(j.console, /^BH-NPROC: 2\r?$/m);
  });

  t.test('bzImage boots too', async (t) => {
    const j = await boot('bzImage, poweroff', { kernel: zone.bzImage, cmdline: `${BASE} bhaction=poweroff` });
    t.equal(j.reason, 'power-off', 'power-off', diag(j));
    t.equal(j.bootInfo?.format, 'bzImage');
    t.match(j.console, /^BH-INIT: hello from the guest\r?$/m);
  });

  t.test('a malformed kernel is a KERNEL_INVALID error in the script, not a crash', async (t) => {
    const j = await boot('bad kernel', { kernel: initrd });
    t.equal(j.error?.code, 'KERNEL_INVALID', j.error?.message ?? '');
    t.match(j.error?.message, /neither an ELF vmlinux nor a bzImage/);
  });

  t.teardown(() => {
    for (const line of times) t.comment(`boot time (bootLinux inside the emulated host): ${line}`);
  });
});
