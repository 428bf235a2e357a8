/**
 * Facts about the machine that go with every result, and the caveats they imply, in words.
 * (A small local probe: src/host's probeHost, once it lands, is the one to share.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';

export type VirtualizationMode = 'hardware' | 'pvm' | 'none';

export interface HostFacts {
  readonly cpuModel: string;
  readonly cpuCount: number;
  /** What /dev/kvm offers here: hardware (vmx/svm), pvm (kvm_pvm, software), or none. */
  readonly virtualization: VirtualizationMode;
  readonly virtualizationDetail: string;
  /** The CPU reports the `hypervisor` flag: this machine is itself a VM. */
  readonly runsUnderHypervisor: boolean;
  readonly kernel: string;
  readonly node: string;
  readonly memoryGiB: number;
  readonly loadAverageAtStart: readonly number[];
  loadAverageAtEnd?: readonly number[];
  readonly runtimeVersions: Record<string, string | null>;
}

export function readCpuInfo(text = safeRead('/proc/cpuinfo')): { model: string; flags: Set<string> } {
  const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? 'unknown';
  const flags = new Set((/^flags\s*:\s*(.+)$/m.exec(text)?.[1] ?? '').trim().split(/\s+/));
  return { model, flags };
}

export function detectVirtualization(flags: Set<string>, pvmLoaded = fs.existsSync('/sys/module/kvm_pvm'), kvmDevice = fs.existsSync('/dev/kvm')): { mode: VirtualizationMode; detail: string } {
  const hw = flags.has('vmx') ? 'vmx' : flags.has('svm') ? 'svm' : undefined;
  if (hw && kvmDevice) return { mode: 'hardware', detail: `/dev/kvm with hardware virtualization (${hw})` };
  if (pvmLoaded && kvmDevice) return { mode: 'pvm', detail: '/dev/kvm is PVM (kvm_pvm loaded; the CPU has neither vmx nor svm)' };
  if (hw) return { mode: 'none', detail: `the CPU has ${hw} but /dev/kvm is missing` };
  return { mode: 'none', detail: 'no /dev/kvm and no vmx/svm' };
}

export function collectHostFacts(runtimeVersions: Record<string, string | null> = {}): HostFacts {
  const cpu = readCpuInfo();
  const virt = detectVirtualization(cpu.flags);
  return {
    cpuModel: cpu.model,
    cpuCount: os.cpus().length,
    virtualization: virt.mode,
    virtualizationDetail: virt.detail,
    runsUnderHypervisor: cpu.flags.has('hypervisor'),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    runtimeVersions,
  };
}

/**
 * What a reader must know before trusting a figure, one sentence each: whether these figures can stand
 * for hardware virtualization, and whether the machine was busy.
 */
export function caveatsFor(facts: HostFacts, measuredLocations: readonly string[] = ['host']): string[] {
  const caveats: string[] = [];
  if (facts.runsUnderHypervisor) {
    caveats.push(
      'This machine is itself a virtual machine (CPU flag `hypervisor`): every figure, bare included, runs under an outer hypervisor. Ratios between runners are meaningful; absolute figures are not bare-metal figures.',
    );
  }
  if (facts.virtualization === 'pvm') {
    caveats.push(
      "This host's /dev/kvm is PVM (software-assisted, no vmx/svm): a zone measured on it would not represent hardware virtualization (guest kernel code is emulated one instruction at a time), so zones are to be measured inside the emulated host instead.",
    );
  } else if (facts.virtualization === 'none') {
    caveats.push('This host has no usable /dev/kvm: zones can only run inside the emulated host here.');
  }
  if (measuredLocations.includes('emulated-host')) {
    caveats.push(
      'Figures marked @emulated-host were measured inside QEMU TCG (software CPU emulation): their absolute values are far from hardware; compare them only with other @emulated-host figures.',
    );
  }
  const load = busiestLoad(facts);
  if (load > facts.cpuCount * 0.5) {
    caveats.push(
      `The machine was busy (1-minute load average up to ${load} on ${facts.cpuCount} CPUs during the run): timings are noisier than usual; the min-max ranges show how much. ` +
        'Scheduling-bound tests (fork, pipe ping-pong) can also favour containers then: a container competes for CPU as its own cgroup, the bare process as one task among all of the host’s.',
    );
  }
  return caveats;
}

/** The 1-minute load average at start or end, whichever is higher (the 15-minute one lags too much). */
export function busiestLoad(facts: HostFacts): number {
  return Math.max(facts.loadAverageAtStart[0] ?? 0, facts.loadAverageAtEnd?.[0] ?? 0);
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
