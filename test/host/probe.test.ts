// The host probe and `bulkhead doctor`: checked against what /proc and /sys say, so the assertions hold on
// this PVM host and on a hardware-virtualization host alike.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { classifyKvmMode, probeHost, type Finding, type HostReport } from '../../src/host/probe';

const root = path.join(__dirname, '..', '..');
const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');

/** The mode as the brief defines it, computed independently of the probe. */
function expectedMode(): 'hardware' | 'pvm' | 'none' {
  if (!fs.existsSync('/dev/kvm')) return 'none';
  const flags = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:.*$/m)?.[0] ?? '';
  if (/\b(vmx|svm)\b/.test(flags)) return 'hardware';
  if (fs.existsSync('/sys/module/kvm_pvm')) return 'pvm';
  return 'none';
}

function doctor(...args: string[]) {
  return spawnSync(process.execPath, [cli, 'doctor', ...args], { encoding: 'utf8', timeout: 60000 });
}

function findings(r: HostReport): [string, Finding][] {
  return [['zones', r.zones], ['kvm', r.kvm], ['xen', r.xen], ['vsock', r.vsock], ['qemu', r.qemu], ['addon', r.addon]];
}

t.test('bulkhead doctor --json reports the KVM mode that /proc/cpuinfo and /sys/module imply', async (t) => {
  const r = doctor('--json');
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as HostReport;
  const mode = expectedMode();
  t.comment(`this host: kvm.mode = ${report.kvm.mode}`);
  t.equal(report.kvm.mode, mode);
  t.equal(report.kvm.present, fs.existsSync('/dev/kvm'));
  if (fs.existsSync('/sys/module/kvm_pvm') && !/\b(vmx|svm)\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'))) {
    t.equal(report.kvm.mode, 'pvm', 'this is a PVM host: the report must say pvm');
    t.equal(report.kvm.ok, false, 'PVM is not a host zones can run on');
  }
  if (report.kvm.accessible) {
    t.equal(report.kvm.apiVersion, 12);
    t.ok((report.kvm.maxVcpus ?? 0) >= 1);
    t.type(report.kvm.capabilities?.KVM_CAP_IRQFD, 'number', 'the capability table has values');
    t.ok((report.kvm.capabilities?.KVM_CAP_IMMEDIATE_EXIT ?? 0) > 0);
  }
  t.equal(report.xen.dom0, (() => {
    try {
      return fs.readFileSync('/proc/xen/capabilities', 'utf8').includes('control_d');
    } catch {
      return false;
    }
  })());
  t.equal(report.xen.privcmd, fs.existsSync('/dev/xen/privcmd'));
  const expectedBackend = mode === 'hardware' && report.kvm.accessible ? 'kvm' : report.qemu.found ? 'emulated-host' : 'none';
  t.equal(report.zones.backend, expectedBackend, `zones: backend ${report.zones.backend} for kvm mode ${mode}`);
  t.equal(report.vsock.ok, true, "vsock is bulkhead's own: nothing needed from the host kernel");
  t.notMatch(report.vsock.meaning + (report.vsock.fix ?? ''), /modprobe vhost_vsock/, 'doctor no longer asks for vhost-vsock');
  t.equal(report.vsock.vhostVsock, fs.existsSync('/dev/vhost-vsock'));
  t.equal(report.vsock.vsockDevice, fs.existsSync('/dev/vsock'));
  const qemu = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  t.equal(report.qemu.found, qemu.status === 0);
  if (report.qemu.found) t.match(qemu.stdout, report.qemu.version ?? 'no version');
  t.equal(report.addon.loaded, true, 'the addon loads from the built package');
  for (const [name, f] of findings(report)) {
    t.ok(typeof f.meaning === 'string' && f.meaning.length > 10, `${name}: has a meaning`);
    if (!f.ok) t.ok(typeof f.fix === 'string' && f.fix.length > 10, `${name} says no, so it has a fix: ${f.fix}`);
  }
  t.ok(report.verdict.length > 10);
});

t.test('bulkhead doctor (human) explains the mode in words', async (t) => {
  const r = doctor();
  t.equal(r.status, 0, r.stderr);
  const mode = expectedMode();
  t.match(r.stdout, new RegExp(`mode: ${mode}`));
  t.match(r.stdout, /meaning: /);
  t.match(r.stdout, /verdict: /);
  if (mode === 'pvm') {
    t.match(r.stdout, /PVM/);
    t.match(r.stdout, /emulated/, 'says guest kernel code is emulated');
    t.match(r.stdout, /stock Linux kernel cannot run/);
    t.match(r.stdout, /zones cannot run here/);
    t.match(r.stdout, /hand-made guests/);
    t.match(r.stdout, /fix: .*hardware virtualization/);
  } else if (mode === 'hardware') {
    t.match(r.stdout, /hardware-accelerated KVM/);
  }
});

t.test('bulkhead doctor rejects unknown options with status 2', async (t) => {
  const r = doctor('--bogus');
  t.equal(r.status, 2);
  t.match(r.stderr, /unknown option --bogus; valid options: --json/);
});

t.test('the mode classification', async (t) => {
  t.equal(classifyKvmMode({ present: true, vmx: true, svm: false, modules: ['kvm_intel'] }), 'hardware');
  t.equal(classifyKvmMode({ present: true, vmx: false, svm: true, modules: ['kvm_amd'] }), 'hardware');
  t.equal(classifyKvmMode({ present: true, vmx: false, svm: false, modules: ['kvm_pvm'] }), 'pvm');
  t.equal(classifyKvmMode({ present: true, vmx: true, svm: false, modules: ['kvm_pvm'] }), 'pvm', 'PVM on a VT-x CPU is still PVM');
  t.equal(classifyKvmMode({ present: false, vmx: true, svm: false, modules: [] }), 'none');
  t.equal(classifyKvmMode({ present: true, vmx: false, svm: false, modules: [] }), 'none');
});

t.test('probeHost on simulated hosts: hardware, no /dev/kvm, a device that is not KVM, no QEMU', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-probe-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cpuinfo = (flags: string) => {
    const f = path.join(dir, `cpuinfo-${flags || 'none'}`);
    fs.writeFileSync(f, `processor\t: 0\nflags\t\t: fpu sse2 ${flags} lm\n`);
    return f;
  };
  const modules = path.join(dir, 'module');
  fs.mkdirSync(path.join(modules, 'kvm_intel'), { recursive: true });

  // A VT-x CPU with kvm_intel; /dev/kvm is this host's real one when it exists.
  if (fs.existsSync('/dev/kvm')) {
    const hw = probeHost({ paths: { cpuinfo: cpuinfo('vmx'), sysModule: modules } });
    t.equal(hw.kvm.mode, 'hardware');
    t.equal(hw.kvm.ok, true);
    t.match(hw.verdict, /hardware KVM/);
  }

  const missing = probeHost({ paths: { devKvm: path.join(dir, 'kvm'), cpuinfo: cpuinfo('vmx'), sysModule: modules } });
  t.equal(missing.kvm.present, false);
  t.equal(missing.kvm.mode, 'none');
  t.equal(missing.kvm.reason, 'missing');
  t.match(missing.kvm.fix, /modprobe kvm_intel/);

  const noVirt = probeHost({ paths: { devKvm: path.join(dir, 'kvm'), cpuinfo: cpuinfo(''), sysModule: modules } });
  t.match(noVirt.kvm.fix, /no VT-x\/AMD-V/);

  // A device node that is not KVM: opens, but is not usable.
  const notKvm = probeHost({ paths: { devKvm: '/dev/null', cpuinfo: cpuinfo('vmx'), sysModule: modules } });
  t.equal(notKvm.kvm.present, true);
  t.equal(notKvm.kvm.accessible, false);
  t.ok(notKvm.kvm.fix && notKvm.kvm.meaning.includes('cannot use it'));

  const noQemu = probeHost({ paths: { PATH: dir } });
  t.equal(noQemu.qemu.found, false);
  t.match(noQemu.qemu.fix, /apt-get install qemu-system-x86/);
  t.ok(noQemu.xen.libxenctrl.loadable || (noQemu.xen.libxenctrl.errors?.length ?? 0) > 0, 'a failed dlopen says why');
});
