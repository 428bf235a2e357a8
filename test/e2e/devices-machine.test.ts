// The virtio devices, end to end: the zone kernel boots through createMachine() inside the emulated host (its
// /dev/kvm has hardware semantics; this machine's PVM one cannot run Linux) with two disks, hvc0, rng, vsock and
// the power device. PID 1 is native/tests/guest-init/devtest.c, which drives each device from inside the guest;
// test/e2e/fixtures/devices-host.js plays the host side inside the emulated host and reports both sides as JSON.
// One boot serves all device assertions; three short boots check reboot and panic.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { singleInitCpio } from '../../src/util/cpio';
import { emulatedHost, recordRetry, testKernel } from '../support/emulated-host';

t.setTimeout(60 * 60_000);

const root = path.join(__dirname, '..', '..');
const fixture = path.join(__dirname, 'fixtures', 'devices-host.js');
const VSOCK_MIB = 256;

interface HostReport {
  lines: string[];
  markers: { marker: number; sinceCreateMs: number }[];
  broken: { device: string; reason: string }[];
  host: Record<string, unknown>;
  errors: string[];
  durationMs?: number;
  exit?: { kind: string; message: string; device?: string; consoleTail: string; sinceCreateMs: number };
  stats?: Record<string, unknown> & { vsockConnections: number };
  udsGone?: boolean;
  error?: { code?: string; message: string; stack?: string };
}

/** The value after `prefix ` on the guest's line that starts with it. */
function field(r: HostReport, prefix: string): string | undefined {
  const line = r.lines.find((l) => l.startsWith(`${prefix} `));
  return line?.slice(prefix.length + 1);
}

t.test('virtio devices in a zone kernel, through createMachine() in the emulated host', async (t) => {
  const host = await emulatedHost(t);
  if (!host) return;
  const zone = await testKernel('zone');
  if (!existsSync(path.join(root, 'dist', 'cjs', 'kvm', 'machine.js'))) return void t.fail('dist/ has no kvm/machine.js: run npm run build first');
  const dir = host.workdir(t);
  // Compiled into this test's own directory: other e2e files run `make guest-init` at the same time.
  const devtest = path.join(dir, 'devtest');
  const cc = spawnSync('cc', ['-static', '-O2', '-Wall', '-Wextra', '-Werror', path.join(root, 'native', 'tests', 'guest-init', 'devtest.c'), '-o', devtest], {
    encoding: 'utf8',
  });
  if (cc.status !== 0) return void t.fail(`cc devtest.c failed: ${(cc.stderr || cc.stdout).slice(-2000)}`);
  const initrd = path.join(dir, 'initramfs.cpio');
  writeFileSync(initrd, singleInitCpio(readFileSync(devtest)));
  const vda = path.join(dir, 'vda.img');
  const vdaBytes = randomBytes(64 << 20);
  writeFileSync(vda, vdaBytes);
  const vdaSha = createHash('sha256').update(vdaBytes).digest('hex');
  const vdb = path.join(dir, 'vdb.img');
  writeFileSync(vdb, Buffer.alloc(8 << 20));

  const boot = async (label: string, steps: string, end: string, sub: string): Promise<HostReport> => {
    const run = async (): Promise<HostReport> => {
      const args = {
        kernel: zone.vmlinux, initrd, dir: path.join(dir, sub), steps, end, vsockMib: VSOCK_MIB, timeoutMs: 900_000,
        disks: [{ path: vda, readOnly: true, serial: 'root-image' }, { path: vdb }],
      };
      await host.run(['mkdir', '-p', args.dir]);
      const started = Date.now();
      const r = await host.run([process.execPath, fixture, JSON.stringify(args)], { timeoutMs: 1_200_000 });
      const line = r.stdout.trim().split('\n').pop() ?? '';
      try {
        const report = JSON.parse(line) as HostReport;
        t.comment(`${label}: ${report.exit?.kind ?? report.error?.message} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
        return report;
      } catch {
        return { lines: [], markers: [], broken: [], host: {}, errors: [`no JSON (exit ${r.exitCode}): ${r.stdout.slice(-500)} ${r.stderr.slice(-2000)}`] };
      }
    };
    // Retried once, as a counted warning, for the nested-SVM flake (test/e2e/fixtures/early-boot-death.ts):
    // a guest that died before its init printed anything, or, later in this long and loaded run, a
    // triple fault with no oops, no panic and no error on either side (the emulated CPU losing the
    // guest, not a device). A device fault (an error, a broken device, an oops) is never retried.
    const diedEarly = (r: HostReport) => !r.error && !r.lines.some((l) => l.startsWith('BH-DEVTEST')) &&
      (r.exit?.kind === 'triple-fault' || r.exit === undefined);
    const diedMidRun = (r: HostReport) => r.exit?.kind === 'triple-fault' && !r.error && r.errors.length === 0 && r.broken.length === 0 &&
      !/Oops|BUG:|Kernel panic|general protection/.test(r.exit.consoleTail);
    const first = await run();
    if (diedEarly(first)) recordRetry(t, `${label}: the guest died before userspace (nested SVM under TCG); retried once`);
    else if (diedMidRun(first)) recordRetry(t, `${label}: the guest triple-faulted mid-run after "${first.lines.at(-1) ?? ''}" with no oops and no device error (nested SVM under TCG); retried once`);
    else return first;
    return run();
  };
  const diag = (r: HostReport) => ({ errors: r.errors, error: r.error, exit: r.exit, lines: r.lines, host: r.host });

  t.test('one boot drives every device', async (t) => {
    const r = await boot('all devices', 'blk,console,rng,vsock', 'poweroff', 'all');
    t.equal(r.exit?.kind, 'power-off', 'powered off through the power device', diag(r));
    t.same(r.errors, [], 'the host side saw no error');
    t.same(r.broken, [], 'no device was marked broken');

    // blk
    t.equal(field(r, 'BH-VDA-SHA256'), `${vdaSha} ${64 << 20}`, 'the guest read all 64 MiB of vda and its sha256 matches the host file');
    t.equal(field(r, 'BH-VDA-RO'), '1', 'vda is read-only in the guest');
    t.match(field(r, 'BH-VDA-WRITE'), /^(EPERM|EACCES|EROFS)$/, 'a write to the read-only disk is refused in the guest');
    t.equal(field(r, 'BH-VDA-SERIAL'), 'root-image', 'the serial id reaches /sys/block/vda/serial');
    const flushed = field(r, 'BH-VDB-FLUSHED')?.split(' ');
    t.equal(flushed?.[0], 'ok', 'the guest wrote 1 MiB to vdb and fsync succeeded');
    t.equal(r.host.vdbSha256, flushed?.[1], 'after the flush, while the VM ran, the host file holds what the guest wrote');

    // console and rng
    t.equal(field(r, 'BH-ECHO'), 'typed on the host, read over hvc0', 'host input reached the guest through hvc0');
    t.ok(r.lines.includes('BH-DEVTEST start (power device found)'), 'guest output arrived through hvc0 (console=hvc0 only)');
    const rng = field(r, 'BH-HWRNG')?.split(' ');
    t.equal(rng?.[0], 'virtio_rng.0', '/dev/hwrng is the virtio-rng');
    t.match(rng?.[1], /^[0-9a-f]{128}$/, '64 bytes read from /dev/hwrng');
    t.not(rng?.[1], '0'.repeat(128));

    // vsock, host -> guest
    t.match(r.host.connect1024, /^OK \d+$/, 'CONNECT 1024 from the host: the guest accepted (OK <host port>)');
    t.equal(r.host.echo1024, true, 'bytes went host -> guest and back');
    t.equal(r.host.connect7777, null, 'CONNECT to a port nothing listens on: closed without OK');
    t.equal(field(r, 'BH-VSOCK-IN'), `${VSOCK_MIB << 20} ${r.host.streamInCrc}`, `${VSOCK_MIB} MiB host -> guest, crc32 matches`);
    // vsock, guest -> host
    t.equal(`${r.host.sinkBytes} ${r.host.sinkCrc}`, field(r, 'BH-VSOCK-OUT'), `${VSOCK_MIB} MiB guest -> host (<uds>_5000), crc32 matches`);
    t.equal(field(r, 'BH-VSOCK-64'), 'opened 64 matched 64', '64 concurrent guest -> host connections, each echoed intact');
    // The guest connects all 64 before any I/O, so 64 are open at once in the VMM. How many the host's
    // node server holds at once depends on when it accepts them from its backlog (measured 40 under
    // load: early ones were echoed and closed first), so the host side checks that all 64 arrived.
    t.equal(r.host.echoConnections, 64, 'all 64 reached the host echo port');
    t.equal(field(r, 'BH-VSOCK-REFUSED'), 'ECONNRESET', 'a guest connection to a host port nobody listens on is reset');
    t.equal(r.stats?.vsockConnections, 0, 'every vsock connection was closed');
    t.equal(r.stats?.pauses, 0, 'the VM was never paused: no pause-and-look for power-off');
    t.equal(r.udsGone, true, 'the vsock socket file went with the machine');

    // power device markers
    t.ok(r.markers.length >= 5, `boot markers with their times: ${r.markers.map((m) => `${m.marker}@${(m.sinceCreateMs / 1000).toFixed(2)}s`).join(' ')}`);
    t.equal(r.markers[0]?.marker, 1);
    t.ok(r.markers.every((m, i) => i === 0 || m.sinceCreateMs >= r.markers[i - 1]!.sinceCreateMs), 'in order');
    t.comment(`the all-devices boot ran ${((r.durationMs ?? 0) / 1000).toFixed(1)} s; stats ${JSON.stringify(r.stats)}`);
  });

  t.test('reboot through the power device', async (t) => {
    const r = await boot('power-device reboot', 'none', 'reboot', 'reboot');
    t.equal(r.exit?.kind, 'reboot', r.exit?.message ?? 'no exit', diag(r));
  });

  t.test("the kernel's own reboot (i8042 reset line)", async (t) => {
    const r = await boot('kernel reboot', 'none', 'kernel-reboot', 'kreboot');
    t.equal(r.exit?.kind, 'reboot', r.exit?.message ?? 'no exit', diag(r));
  });

  t.test('a kernel panic ends the machine as a panic, with its console tail', async (t) => {
    const r = await boot('panic', 'none', 'panic', 'panic');
    t.equal(r.exit?.kind, 'panic', r.exit?.message ?? 'no exit', diag(r));
    t.match(r.exit?.consoleTail, /Kernel panic - not syncing/, 'the panic line is in the tail');
  });
});
