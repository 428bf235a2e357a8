/**
 * What this host can run: KVM (and which kind), Xen, vsock, QEMU. Every check that says "no" also says
 * what that means for the user (`meaning`) and what to do about it (`fix`). `bulkhead doctor` prints this.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { kvmUnavailableReason } from '../kvm/errors';
import { loadNative, type NativeAddon } from '../kvm/native';
import { which } from '../util/process';
import { xenHostInfo } from '../xen/host';

/** What one check found. `meaning` is always set; `fix` whenever `ok` is false. */
export interface Finding {
  ok: boolean;
  meaning: string;
  fix?: string;
}

/**
 * 'hardware': the CPU has VT-x/AMD-V (vmx/svm) and KVM uses it.
 * 'pvm': KVM is the PVM module (kvm_pvm) on a CPU without vmx/svm: guest kernel code is emulated, stock
 *        kernels cannot run, so zones cannot run here; tiny hand-made guests work.
 * 'none': no usable /dev/kvm.
 */
export type KvmMode = 'hardware' | 'pvm' | 'none';

export interface KvmReport extends Finding {
  /** /dev/kvm exists. */
  present: boolean;
  /** /dev/kvm opens and speaks KVM API 12. */
  accessible: boolean;
  /** Why it is not accessible. */
  reason?: 'missing' | 'permission' | 'api-version' | 'open-failed' | 'addon-unavailable';
  /** The error text behind `reason`. */
  detail?: string;
  mode: KvmMode;
  cpu: { vmx: boolean; svm: boolean };
  /** Loaded KVM modules among kvm_intel, kvm_amd, kvm_pvm. */
  modules: string[];
  apiVersion?: number;
  maxVcpus?: number;
  /** Capabilities bulkhead knows by name, with their values (0: absent). */
  capabilities?: Record<string, number>;
}

export interface XenReport extends Finding {
  /** /proc/xen/capabilities contains control_d: this kernel is Xen's dom0. */
  dom0: boolean;
  /** /dev/xen/privcmd exists. */
  privcmd: boolean;
  libxenctrl: { loadable: boolean; name?: string; errors?: string[] };
  /** Each of the libraries bulkhead/xen loads, and why one did not (absent when the addon is missing). */
  libraries?: { name: string; soname: string; loaded: boolean; error?: string }[];
  /** In dom0 with libxenctrl: Xen's version and free memory, as the hypervisor reports them. */
  hypervisor?: { version: string; freeMemoryMiB: number; domains: number };
}

export interface VsockReport extends Finding {
  /** /dev/vhost-vsock: the host side of virtio-vsock, what a VMM needs to give guests vsock. */
  vhostVsock: boolean;
  /** /dev/vsock: this kernel has the vsock core (as a guest or host). */
  vsockDevice: boolean;
  /** socket(AF_VSOCK) works in this process. */
  afVsock: { ok: boolean; errno: number; message: string };
}

export interface QemuReport extends Finding {
  found: boolean;
  path?: string;
  version?: string;
}

export interface AddonReport extends Finding {
  loaded: boolean;
  error?: string;
}

/** Which backend runs zones here (what Zone.create with backend 'auto' picks), and why. */
export interface ZonesReport extends Finding {
  backend: 'kvm' | 'emulated-host' | 'none';
}

export interface HostReport {
  zones: ZonesReport;
  kvm: KvmReport;
  xen: XenReport;
  vsock: VsockReport;
  qemu: QemuReport;
  addon: AddonReport;
  /** One sentence: where zones can run on this host. */
  verdict: string;
}

export interface ProbeOptions {
  /** Files and directories the probe reads (for tests; defaults are the real ones). */
  paths?: Partial<ProbePaths>;
}

export interface ProbePaths {
  devKvm: string;
  cpuinfo: string;
  sysModule: string;
  xenCapabilities: string;
  xenPrivcmd: string;
  vhostVsock: string;
  vsock: string;
  /** Colon-separated search path for qemu-system-x86_64. */
  PATH: string;
}

const DEFAULT_PATHS: ProbePaths = {
  devKvm: '/dev/kvm',
  cpuinfo: '/proc/cpuinfo',
  sysModule: '/sys/module',
  xenCapabilities: '/proc/xen/capabilities',
  xenPrivcmd: '/dev/xen/privcmd',
  vhostVsock: '/dev/vhost-vsock',
  vsock: '/dev/vsock',
  PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
};

const LIBXENCTRL_NAMES = ['libxenctrl.so.4.17', 'libxenctrl.so'];

export const PVM_MEANING =
  '/dev/kvm is PVM (paravirtualized KVM, kvm_pvm) on a CPU without VT-x/AMD-V: guest user code (CPL3) runs at ' +
  'native speed, but guest kernel code (CPL0) is emulated one instruction at a time (~0.7 µs each) and a stock ' +
  'Linux kernel cannot run (its SYSCALL entry faults under PVM), so zones cannot run here. Tiny hand-made guests ' +
  '(VMM tests) work.';
const PVM_FIX =
  'run zones on a host with hardware virtualization (bare metal, or a cloud VM with nested virtualization), or ' +
  'use the emulated host (`bulkhead host run -- ...`, QEMU TCG with its own hardware-semantics /dev/kvm)';

/** The KVM mode from the facts that decide it. */
export function classifyKvmMode(facts: { present: boolean; vmx: boolean; svm: boolean; modules: string[] }): KvmMode {
  if (!facts.present) return 'none';
  if ((facts.vmx || facts.svm) && !facts.modules.every((m) => m === 'kvm_pvm')) return 'hardware';
  if (facts.modules.includes('kvm_pvm')) return 'pvm';
  // /dev/kvm exists but neither vmx/svm nor PVM: some other backend; treat like hardware only if flags exist.
  return facts.vmx || facts.svm ? 'hardware' : 'none';
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function cpuFlags(cpuinfo: string | undefined): { vmx: boolean; svm: boolean } {
  const flags = new Set<string>();
  for (const line of (cpuinfo ?? '').split('\n')) {
    const m = /^flags\s*:\s*(.*)$/.exec(line);
    if (m?.[1]) for (const f of m[1].split(/\s+/)) flags.add(f);
  }
  return { vmx: flags.has('vmx'), svm: flags.has('svm') };
}

function tryAddon(): { addon?: NativeAddon; error?: string } {
  try {
    return { addon: loadNative() };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

function probeKvm(paths: ProbePaths, addon: NativeAddon | undefined, addonError: string | undefined): KvmReport {
  const present = fs.existsSync(paths.devKvm);
  const cpu = cpuFlags(readText(paths.cpuinfo));
  const modules = ['kvm_intel', 'kvm_amd', 'kvm_pvm'].filter((m) => fs.existsSync(path.join(paths.sysModule, m)));
  const mode = classifyKvmMode({ present, ...cpu, modules });
  const base = { present, cpu, modules, mode };

  if (!present) {
    const noCpuSupport = !cpu.vmx && !cpu.svm;
    return {
      ...base,
      ok: false,
      accessible: false,
      mode: 'none',
      reason: 'missing',
      detail: `${paths.devKvm} does not exist`,
      meaning: 'there is no /dev/kvm: bulkhead cannot create KVM VMs on this host.',
      fix: noCpuSupport
        ? 'this CPU has no VT-x/AMD-V: use a host with hardware virtualization (or nested virtualization), or the emulated host (`bulkhead host run`)'
        : `load KVM: \`modprobe ${cpu.vmx ? 'kvm_intel' : 'kvm_amd'}\` (and enable virtualization in the firmware if it fails)`,
    };
  }

  let apiVersion: number | undefined;
  let maxVcpus: number | undefined;
  let capabilities: Record<string, number> | undefined;
  let reason: KvmReport['reason'];
  let detail: string | undefined;
  if (addon) {
    const probe = addon.probeKvm(paths.devKvm);
    if (probe.ok) {
      apiVersion = probe.apiVersion;
      maxVcpus = probe.maxVcpus;
      capabilities = Object.fromEntries(probe.capabilities.map((c) => [c.name, c.value]));
    } else {
      reason = kvmUnavailableReason(probe.errno);
      detail = probe.message;
    }
  } else {
    reason = 'addon-unavailable';
    detail = addonError;
    try {
      fs.closeSync(fs.openSync(paths.devKvm, 'r+'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') reason = 'permission';
      detail = `${detail}; open(${paths.devKvm}): ${(err as Error).message}`;
    }
  }
  const accessible = reason === undefined;
  const found = { ...base, accessible, apiVersion, maxVcpus, capabilities, reason, detail };

  if (!accessible) {
    const fixes: Record<NonNullable<KvmReport['reason']>, string> = {
      missing: `load the KVM module for this CPU`,
      permission: `give this user read/write access to ${paths.devKvm} (usually: add it to the group that owns it, often "kvm", and log in again)`,
      'api-version': 'this kernel speaks an unexpected KVM API version; use a kernel with the standard KVM API 12',
      'open-failed': `check that ${paths.devKvm} is the KVM device and that the kvm modules loaded without errors (dmesg)`,
      'addon-unavailable': 'build the native addon (`npm run build:native`) or install a bulkhead package that ships prebuilds/',
    };
    return {
      ...found,
      ok: false,
      meaning: `${paths.devKvm} exists but bulkhead cannot use it (${reason}): no VMs can be created.`,
      fix: fixes[reason as NonNullable<KvmReport['reason']>],
    };
  }
  if (mode === 'pvm') return { ...found, ok: false, meaning: PVM_MEANING, fix: PVM_FIX };
  if (mode === 'none') {
    return {
      ...found,
      ok: false,
      meaning: 'KVM opens, but the CPU reports neither vmx nor svm and no PVM module is loaded: an unknown KVM backend; zones may not run.',
      fix: 'use a host with hardware virtualization',
    };
  }
  return { ...found, ok: true, meaning: 'hardware-accelerated KVM (VT-x/AMD-V): zones can run here.' };
}

function probeXen(paths: ProbePaths, addon: NativeAddon | undefined, addonError: string | undefined): XenReport {
  const caps = readText(paths.xenCapabilities);
  const dom0 = caps !== undefined && caps.includes('control_d');
  const privcmd = fs.existsSync(paths.xenPrivcmd);
  const lib: ReturnType<NativeAddon['dlopenCheck']> = addon
    ? addon.dlopenCheck(LIBXENCTRL_NAMES)
    : { ok: false, errors: [`not checked: ${addonError ?? 'native addon unavailable'}`] };
  const libxenctrl: XenReport['libxenctrl'] = lib.ok
    ? { loadable: true, name: lib.name }
    : { loadable: false, errors: lib.errors };
  const libraries = addon ? xenLibraryStatus(addon) : undefined;
  const missingLibs = (libraries ?? []).filter((l) => !l.loaded);
  let hypervisor: XenReport['hypervisor'];
  let hypervisorError: string | undefined;
  if (dom0 && privcmd && libxenctrl.loadable && addon) {
    try {
      const info = xenHostInfo();
      hypervisor = { version: info.version, freeMemoryMiB: info.freeMemoryMiB, domains: info.domains.length };
    } catch (err) {
      hypervisorError = (err as Error).message;
    }
  }
  const base = { dom0, privcmd, libxenctrl, ...(libraries ? { libraries } : {}), ...(hypervisor ? { hypervisor } : {}) };
  if (dom0 && privcmd && libxenctrl.loadable && hypervisor && missingLibs.length === 0) {
    return {
      ...base,
      ok: true,
      meaning: `this is a Xen ${hypervisor.version} dom0 with privcmd and all of Xen's libraries (${hypervisor.freeMemoryMiB} MiB free for domains, ${hypervisor.domains} running): bulkhead/xen works here.`,
    };
  }
  const missing: string[] = [];
  if (!dom0) missing.push(caps === undefined ? 'not running under Xen (no /proc/xen/capabilities)' : 'not dom0 (no control_d)');
  if (!privcmd) missing.push(`no ${paths.xenPrivcmd}`);
  if (!libxenctrl.loadable) missing.push('libxenctrl cannot be loaded');
  const otherMissing = missingLibs.filter((l) => l.name !== 'libxenctrl');
  if (otherMissing.length > 0) missing.push(`missing ${otherMissing.map((l) => `${l.name} (${l.soname})`).join(', ')}`);
  if (hypervisorError) missing.push(`Xen does not answer: ${hypervisorError}`);
  return {
    ...base,
    ok: false,
    meaning: `the Xen backend is unavailable (${missing.join('; ')}): zones cannot run as Xen domains here.`,
    fix: !dom0
      ? 'boot this machine (or the emulated host) under Xen as dom0 with the xen-utils packages installed'
      : !privcmd
        ? 'load xen-privcmd and mount xenfs on /proc/xen'
        : 'install the Xen 4.17 runtime libraries (Debian: xen-utils-4.17, libxenmisc4.17 and the libxen* packages)',
  };
}

/** The addon's dlopen status of Xen's libraries (an older addon without it: undefined). */
function xenLibraryStatus(addon: NativeAddon): XenReport['libraries'] {
  const native = addon as unknown as { xenLibraries?: () => { name: string; soname: string; loaded: boolean; error: string | null }[] };
  if (typeof native.xenLibraries !== 'function') return undefined;
  return native.xenLibraries().map((l) => ({ name: l.name, soname: l.soname, loaded: l.loaded, ...(l.error ? { error: l.error } : {}) }));
}

function probeVsock(paths: ProbePaths, addon: NativeAddon | undefined): VsockReport {
  const vhostVsock = fs.existsSync(paths.vhostVsock);
  const vsockDevice = fs.existsSync(paths.vsock);
  const afVsock = addon ? addon.vsockCheck() : { ok: false, errno: 0, message: 'not checked: native addon unavailable' };
  const base = { vhostVsock, vsockDevice, afVsock };
  // Zones get vsock from bulkhead's own virtio-vsock device, whose host side is Unix sockets:
  // neither vhost-vsock nor AF_VSOCK on the host is needed. They are reported for information.
  return {
    ...base,
    ok: true,
    meaning:
      "zones' vsock is bulkhead's own (virtio-vsock in the VMM, Unix sockets on the host): nothing is needed from this kernel" +
      (vhostVsock ? '; /dev/vhost-vsock is present too (used only by QEMU baselines in benchmarks)' : ''),
  };
}

function probeQemu(paths: ProbePaths): QemuReport {
  const found = which('qemu-system-x86_64', paths.PATH);
  const fix = 'install QEMU (Debian: `apt-get install qemu-system-x86`)';
  if (!found) {
    return {
      ok: false,
      found: false,
      meaning: 'qemu-system-x86_64 is not on PATH: the emulated host (and its benchmarks) cannot run.',
      fix,
    };
  }
  try {
    const out = execFileSync(found, ['--version'], { encoding: 'utf8', timeout: 10000, stdio: ['ignore', 'pipe', 'pipe'] });
    const version = /version\s+([0-9][^\s]*)/.exec(out)?.[1] ?? out.split('\n')[0]?.trim();
    return {
      ok: true,
      found: true,
      path: found,
      version,
      meaning: 'QEMU is available: the emulated host (TCG, with a hardware-semantics /dev/kvm inside) can run zones.',
    };
  } catch (err) {
    return {
      ok: false,
      found: true,
      path: found,
      meaning: `qemu-system-x86_64 is on PATH but \`--version\` failed (${(err as Error).message}): the emulated host cannot run.`,
      fix,
    };
  }
}

function zonesFor(kvm: KvmReport, qemu: QemuReport): ZonesReport {
  if (kvm.ok && kvm.mode === 'hardware') {
    return { backend: 'kvm', ok: true, meaning: "/dev/kvm has hardware virtualization: zones' VMs run in the calling process." };
  }
  const why = kvm.mode === 'pvm' ? '/dev/kvm is PVM (no VT-x/AMD-V): a stock zone kernel cannot run on it' : 'there is no usable /dev/kvm';
  if (qemu.ok) {
    return {
      backend: 'emulated-host',
      ok: true,
      meaning: `${why}, so zones run inside the emulated host (QEMU TCG with nested SVM: hardware-semantics KVM, started and shared automatically); expect slow starts.`,
    };
  }
  return { backend: 'none', ok: false, meaning: `${why}, and without QEMU there is no emulated host: zones cannot run here.`, fix: 'apt-get install qemu-system-x86, or use a host with VT-x/AMD-V' };
}

function verdictFor(zones: ZonesReport, xen: XenReport): string {
  if (zones.backend === 'kvm') return 'zones run here on hardware KVM, in-process.';
  if (zones.backend === 'emulated-host') return `zones run here inside the emulated host (QEMU TCG, nested SVM); ${xen.ok ? 'Xen domains too.' : 'slow, but the same API.'}`;
  return xen.ok ? 'zones cannot run here on KVM; Xen domains can be driven with bulkhead/xen.' : 'zones cannot run on this host: no hardware KVM and no QEMU for the emulated host.';
}

/** Probes the host. Never throws: every problem is a finding with its meaning and fix. */
export function probeHost(options: ProbeOptions = {}): HostReport {
  const paths: ProbePaths = { ...DEFAULT_PATHS, ...options.paths };
  const { addon, error } = tryAddon();
  const addonReport: AddonReport = addon
    ? { ok: true, loaded: true, meaning: 'the native addon is loaded.' }
    : {
        ok: false,
        loaded: false,
        error,
        meaning: 'the native addon could not be loaded: bulkhead cannot drive /dev/kvm or load Xen libraries.',
        fix: 'build it with `npm run build:native` (needs a C/C++ toolchain), or install a package that ships prebuilds/',
      };
  const kvm = probeKvm(paths, addon, error);
  const xen = probeXen(paths, addon, error);
  const vsock = probeVsock(paths, addon);
  const qemu = probeQemu(paths);
  const zones = zonesFor(kvm, qemu);
  return { zones, kvm, xen, vsock, qemu, addon: addonReport, verdict: verdictFor(zones, xen) };
}
