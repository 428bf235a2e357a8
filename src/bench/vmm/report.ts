/**
 * The VMM comparison's results: the JSON document and its markdown rendering (medians, min-max,
 * ratios ours/QEMU, the virtualization mode of every figure, and what the figures cannot represent).
 */
import type { HostFacts } from '../host-facts';
import { summarize } from '../method/stats';
import type { BootConfig, BootSample } from './boot';
import type { DevicesConfig, ThroughputKind, ThroughputSample } from './devices';
import type { ExitResults, Figure } from './exits';

export interface BootResults {
  location: 'emulated-host';
  virtualization: string;
  config: Omit<BootConfig, 'runs' | 'warmups' | 'timeoutMs'> & { runs: number; warmups: number };
  qemuVersion: string;
  samples: BootSample[];
  markerMs: { ours: Figure; qemu: Figure };
  overheadMiB: { ours: Figure; qemu: Figure };
  rssMiB: { ours: Figure; qemu: Figure };
  guestMiB: { ours: Figure; qemu: Figure };
}

export interface DevicesResults {
  location: 'emulated-host';
  virtualization: string;
  config: Omit<DevicesConfig, 'bhBoot' | 'qemu' | 'peer' | 'workDir'>;
  qemuVersion: string;
  throughput: ThroughputSample[];
  /** MiB/s per kind: blk read, vsock guest -> host, vsock host -> guest. */
  mibPerS: Record<ThroughputKind, { ours: Figure; qemu: Figure }>;
  boot: BootSample[];
  markerMs: { ours: Figure; qemu: Figure };
  overheadMiB: { ours: Figure; qemu: Figure };
}

export interface VmmBenchResults {
  format: 'bulkhead-bench-vmm/1';
  startedAt: string;
  finishedAt: string;
  /** Each round's order was shuffled from it (`--seed N` repeats it); absent in results written before. */
  seed?: number;
  host: HostFacts;
  /** Benchmark A on this machine's /dev/kvm, and inside the emulated host (when it could run). */
  exits: { location: 'host' | 'emulated-host'; result?: ExitResults; skipped?: string }[];
  boot: { result?: BootResults; skipped?: string };
  /** Benchmark C: the virtio devices (absent in results written before it existed). */
  devices?: { result?: DevicesResults; skipped?: string };
  goals: { name: string; target: string; measured: string; met: boolean | null }[];
  caveats: string[];
}

export function fig(values: number[]): Figure {
  return { ...summarize(values), samples: values };
}

export function summarizeBoot(samples: readonly BootSample[]): Pick<BootResults, 'markerMs' | 'overheadMiB' | 'rssMiB' | 'guestMiB'> {
  const counted = samples.filter((s) => !s.warmup);
  const pick = (vmm: 'ours' | 'qemu', f: (s: BootSample) => number): Figure => fig(counted.filter((s) => s.vmm === vmm).map(f));
  const both = (f: (s: BootSample) => number) => ({ ours: pick('ours', f), qemu: pick('qemu', f) });
  return {
    markerMs: both((s) => s.markerMs),
    overheadMiB: both((s) => s.memory.overheadKb / 1024),
    rssMiB: both((s) => s.memory.rssKb / 1024),
    guestMiB: both((s) => s.memory.guestKb / 1024),
  };
}

export function summarizeDevices(throughput: readonly ThroughputSample[], boot: readonly BootSample[]): Pick<DevicesResults, 'mibPerS' | 'markerMs' | 'overheadMiB'> {
  const counted = throughput.filter((s) => !s.warmup);
  const rate = (kind: ThroughputKind, vmm: 'ours' | 'qemu'): Figure => fig(counted.filter((s) => s.kind === kind && s.vmm === vmm).map((s) => s.mibPerS));
  const both = (kind: ThroughputKind) => ({ ours: rate(kind, 'ours'), qemu: rate(kind, 'qemu') });
  const b = summarizeBoot(boot);
  return { mibPerS: { blk: both('blk'), 'vsock-out': both('vsock-out'), 'vsock-in': both('vsock-in') }, markerMs: b.markerMs, overheadMiB: b.overheadMiB };
}

/**
 * The ratio ours/QEMU of each counted round (the two ran back to back, so a busy moment of the
 * machine weighs on both): a steadier figure than the ratio of the two medians when load comes and goes.
 */
export function pairedRatios(throughput: readonly ThroughputSample[], kind: ThroughputKind): Figure | undefined {
  const ratios: number[] = [];
  const counted = throughput.filter((s) => !s.warmup && s.kind === kind);
  for (const ours of counted.filter((s) => s.vmm === 'ours')) {
    const qemu = counted.find((s) => s.vmm === 'qemu' && s.round === ours.round);
    if (qemu && qemu.mibPerS > 0) ratios.push(ours.mibPerS / qemu.mibPerS);
  }
  return ratios.length ? fig(ratios) : undefined;
}

export function modeLabel(location: string, virtualization: string): string {
  if (location === 'host') return virtualization === 'pvm' ? 'PVM (this host’s /dev/kvm, software-assisted)' : `${virtualization} (this host)`;
  return 'nested KVM, SVM emulated by QEMU TCG (emulated host)';
}

const f1 = (n: number, digits = 1): string => n.toFixed(digits);
function cell(f: Figure | undefined, digits = 1): string {
  if (!f || f.n === 0) return '—';
  return `${f1(f.median, digits)} [${f1(f.min, digits)}–${f1(f.max, digits)}]`;
}
function ratio(a: Figure | undefined, b: Figure | undefined): string {
  if (!a || !b || a.n === 0 || b.n === 0 || !(b.median > 0)) return '—';
  return `${(a.median / b.median).toFixed(2)}x`;
}

/** Whether two figures' min–max ranges overlap (then their medians' order is not a firm result). */
export function rangesOverlap(a: Figure, b: Figure): boolean {
  return a.min <= b.max && b.min <= a.max;
}

export function goalsFor(r: Omit<VmmBenchResults, 'goals' | 'caveats' | 'format'>): VmmBenchResults['goals'] {
  const goals: VmmBenchResults['goals'] = [];
  for (const e of r.exits) {
    const x = e.result;
    if (!x) continue;
    const where = modeLabel(e.location, x.virtualization);
    const pairs: [string, Figure | undefined, Figure | undefined, string][] = [
      ['exit round trip (library, native path)', x.exitNs.ours, x.exitNs.qemu, 'ns'],
      ['exit round trip (process vs process)', x.exitNs.oursProcess, x.exitNs.qemu, 'ns'],
      ['create + first instruction + destroy (process vs process)', x.lifecycleMs.oursProcess, x.lifecycleMs.qemu, 'ms'],
      ['create + first instruction + destroy (library in-process vs QEMU process)', x.lifecycleMs.ours, x.lifecycleMs.qemu, 'ms'],
    ];
    for (const [name, a, b, unit] of pairs) {
      if (!a || a.n === 0) continue;
      if (!b || b.n === 0) {
        goals.push({ name: `${name} @ ${where}`, target: 'ours ≤ QEMU', measured: 'QEMU did not run', met: null });
        continue;
      }
      const rr = a.median / b.median;
      goals.push({
        name: `${name} @ ${where}`,
        target: 'ours ≤ QEMU',
        measured:
          `ours ${f1(a.median, unit === 'ns' ? 0 : 2)} ${unit} vs QEMU ${f1(b.median, unit === 'ns' ? 0 : 2)} ${unit}: ${rr.toFixed(2)}x (${rr <= 1 ? `${((1 - rr) * 100).toFixed(0)}% less` : `${((rr - 1) * 100).toFixed(0)}% more`})` +
          (rangesOverlap(a, b) ? '; the min–max ranges overlap: a difference within the noise of this machine' : '; the min–max ranges do not overlap'),
        met: rr <= 1,
      });
    }
  }
  const b = r.boot.result;
  if (b) {
    const rr = b.markerMs.ours.median / b.markerMs.qemu.median;
    const overlap = rangesOverlap(b.markerMs.ours, b.markerMs.qemu) ? 'the min–max ranges overlap' : 'the min–max ranges do not overlap';
    goals.push({ name: 'boot to userspace marker @ emulated host', target: '≤ 0.8x QEMU', measured: `${rr.toFixed(2)}x (ours ${f1(b.markerMs.ours.median, 0)} ms, QEMU ${f1(b.markerMs.qemu.median, 0)} ms); ${overlap}`, met: rr <= 0.8 });
    const counted = b.samples.filter((s) => !s.warmup && s.vmm === 'ours');
    const withoutCopies = counted.length ? summarize(counted.map((s) => (s.memory.overheadKb - s.memory.imageCopiesKb) / 1024)).median : NaN;
    goals.push({
      name: 'VMM memory overhead at the marker @ emulated host',
      target: '≤ 3 MiB',
      measured: `ours ${f1(b.overheadMiB.ours.median, 2)} MiB (QEMU ${f1(b.overheadMiB.qemu.median, 2)} MiB); without any retained kernel+initrd copies ${f1(withoutCopies, 2)} MiB`,
      met: b.overheadMiB.ours.median <= 3,
    });
  }
  const d = r.devices?.result;
  if (d) {
    const where = '@ emulated host, every device attached';
    const rate = (name: string, kind: ThroughputKind, target: number, what: string) => {
      const x = d.mibPerS[kind];
      if (!x.ours.n || !x.qemu.n) return;
      const rr = x.ours.median / x.qemu.median;
      const overlap = rangesOverlap(x.ours, x.qemu) ? 'the min–max ranges overlap' : 'the min–max ranges do not overlap';
      const paired = pairedRatios(d.throughput, kind);
      const perRound = paired ? `; per round ${cell(paired, 2)}x` : '';
      goals.push({ name: `${name} ${where}`, target: `≥ ${target.toFixed(1)}x ${what}`, measured: `${rr.toFixed(2)}x (ours ${f1(x.ours.median)} MiB/s, QEMU ${f1(x.qemu.median)} MiB/s)${perRound}; ${overlap}`, met: rr >= target });
    };
    rate('virtio-blk sequential read', 'blk', 1.0, 'QEMU');
    rate('vsock guest → host', 'vsock-out', 0.8, 'QEMU vhost-vsock');
    rate('vsock host → guest', 'vsock-in', 0.8, 'QEMU vhost-vsock');
    if (d.markerMs.ours.n && d.markerMs.qemu.n) {
      const rr = d.markerMs.ours.median / d.markerMs.qemu.median;
      goals.push({ name: `boot to userspace ${where}`, target: '≤ 0.8x QEMU', measured: `${rr.toFixed(2)}x (ours ${f1(d.markerMs.ours.median, 0)} ms, QEMU ${f1(d.markerMs.qemu.median, 0)} ms)`, met: rr <= 0.8 });
    }
    if (d.overheadMiB.ours.n) {
      goals.push({
        name: `VMM memory overhead at the marker ${where}`,
        target: '≤ 3 MiB',
        measured: `ours ${f1(d.overheadMiB.ours.median, 2)} MiB (QEMU ${f1(d.overheadMiB.qemu.median, 2)} MiB)`,
        met: d.overheadMiB.ours.median <= 3,
      });
    }
  }
  return goals;
}

export function caveatsFor(r: Omit<VmmBenchResults, 'goals' | 'caveats' | 'format'>): string[] {
  const c: string[] = [];
  if (r.host.virtualization === 'pvm' && r.exits.some((e) => e.location === 'host' && e.result)) {
    c.push(
      'Figures labelled PVM were measured on this machine’s /dev/kvm, which is PVM (kvm_pvm, no vmx/svm): every exit goes through PVM’s software world switch and guest CPL0 code is emulated one instruction at a time. They are not hardware-virtualization figures; they compare two VMMs on the same PVM, nothing more.',
    );
  }
  if (r.exits.some((e) => e.location === 'emulated-host' && e.result) || r.boot.result || r.devices?.result) {
    c.push(
      'Figures labelled “emulated host” were measured inside QEMU TCG (software CPU emulation) with nested KVM on emulated AMD SVM: hardware semantics, but every guest instruction, VMRUN and #VMEXIT is emulated, so absolute times are many times those of real hardware, and the cost split between VMM and kernel differs from real hardware. Compare ours with QEMU only within the same label.',
    );
  }
  if (r.host.runsUnderHypervisor) c.push('This machine is itself a virtual machine (CPU flag `hypervisor`): nothing here is a bare-metal figure.');
  const load = Math.max(...r.host.loadAverageAtStart, ...(r.host.loadAverageAtEnd ?? []));
  if (load > r.host.cpuCount * 0.5) {
    c.push(`The machine was shared and busy (load average up to ${load} on ${r.host.cpuCount} CPUs): timings are noisy; the min–max ranges show how much.`);
  }
  if (r.exits.some((e) => e.result)) c.push(
    'Exit round trip = (time at N2 − time at N1) / (N2 − N1) per round, for a CPL3 guest doing `out dx, al` to a port with no device behind it in either VMM (ours: counted as unhandled on the vCPU thread, no JavaScript; QEMU: its unassigned-I/O path). It includes KVM_RUN entry/exit, the hypervisor’s world switch and each VMM’s dispatch; a real device handler would add its own cost. The “raw KVM_RUN loop” column (bench/vmm/kvm-floor.c: one thread, KVM_RUN and a counter, same image and entry state) is the hypervisor’s floor for this exit: a VMM can only add to it, so differences smaller than the min–max spread of the floor itself are noise.',
  );
  if (r.exits.some((e) => e.result)) c.push(
    'Create + first instruction + destroy: ours is in-process through the library (open /dev/kvm, create a 16 MiB VM, load the image, set the multiboot entry state, start, the first exit reaches the done-port handler, destroy, close) and excludes node’s own start-up; QEMU is a whole process (exec, QEMU init, microvm firmware qboot, multiboot load, the first exit at isa-debug-exit, exit) timed from spawn to exit. They answer “how long until a VM has run and is gone” for each way of using the VMM, not the same code path. The process-vs-process rows put ours on QEMU’s terms: bench/vmm/bh-exits.c, the C core linked into a small program (no node, no JavaScript), spawned and timed spawn → exit exactly like QEMU, its done port handled natively.',
  );
  if (r.devices?.result) {
    c.push(
      'Devices: each figure is one VMM process booting the same zone kernel and guest program with the same devices; throughput is measured by the receiving side (the guest clock for blk reads and host → guest vsock, the host peer’s clock for guest → host vsock), from the first byte to the end. Our vsock runs in user space on the VMM’s I/O thread (a host socket per connection, a copy through the Unix socket), QEMU’s in the host kernel (vhost_vsock, no user-space hop): under TCG every system call of the emulated host costs far more than on hardware, which weighs on the user-space design. The disk image lives in the emulated host’s tmpfs, so both VMMs read from its page cache. The boot with every device includes each device’s probe by the guest.',
    );
  }
  if (r.boot.result) {
    c.push(
      'Boot: time from spawning the VMM process to the first stdout line containing the marker (the guest init’s first line), measured by a node process inside the emulated host; both VMMs get the same vmlinux (QEMU boots it through its PVH note, ours through the 64-bit boot protocol), initramfs, command line and 256 MiB. Overhead = sum of Rss over /proc/PID/smaps at the marker minus the Rss of the guest RAM mapping (ours: the memfd “bulkhead-guest-ram”; QEMU: the anonymous private mapping of exactly -m bytes). Rss counts shared library pages in full (the Pss line divides them among the processes sharing them). Whatever a VMM keeps of the images it loaded counts as overhead (bh-boot frees its kernel and initrd buffers once the loader has copied them into guest RAM); the “image copies” figure isolates what remains (anonymous mappings the size of either file). Guest RAM touched differs slightly between the VMMs (different firmware/boot paths), which is why it is subtracted per process.',
    );
  }
  return c;
}

export function renderMarkdown(r: VmmBenchResults): string {
  const lines: string[] = [];
  lines.push('# VMM benchmarks: bulkhead vs QEMU', '');
  lines.push(`Run ${r.startedAt} – ${r.finishedAt} on ${r.host.cpuModel} (${r.host.cpuCount} CPUs), ${r.host.kernel}, node ${r.host.node}.`);
  lines.push(`Host virtualization: **${r.host.virtualization}** — ${r.host.virtualizationDetail}. Load average ${r.host.loadAverageAtStart.join(' / ')} at start, ${(r.host.loadAverageAtEnd ?? []).join(' / ')} at end.`, '');
  lines.push('Figures are medians [min–max] over the counted rounds; ratio = ours / QEMU (below 1: ours is faster or smaller). “Per round”: the ratio within each interleaved round, median [min–max].' + (r.seed !== undefined ? ` Each round's order was shuffled from seed ${r.seed} (\`--seed ${r.seed}\` repeats it).` : ''), '');

  lines.push('## A. Exit round trip and VM lifecycle (same guest image: multiboot, CPL3 port-write loop)', '');
  if (r.exits.length === 0) lines.push('Not run (--only).');
  else lines.push('| mode | metric | ours | QEMU | ours/QEMU | raw KVM_RUN loop, no VMM | rounds |', '|---|---|---|---|---|---|---|');
  for (const e of r.exits) {
    if (!e.result) {
      lines.push(`| ${modeLabel(e.location, e.location === 'host' ? r.host.virtualization : 'hardware')} | — | skipped: ${e.skipped ?? 'unknown'} | | | | |`);
      continue;
    }
    const x = e.result;
    const m = modeLabel(e.location, x.virtualization);
    lines.push(`| ${m} | exit round trip, ns/exit (native path) | ${cell(x.exitNs.ours, 0)} | ${cell(x.exitNs.qemu, 0)} | ${ratio(x.exitNs.ours, x.exitNs.qemu)} | ${cell(x.exitNs.floor, 0)} | ${x.exitNs.ours.n} |`);
    lines.push(`| ${m} | exit round trip, ns/exit — ours as a process (C core, bh-exits.c), timed like QEMU | ${cell(x.exitNs.oursProcess, 0)} | ${cell(x.exitNs.qemu, 0)} | ${ratio(x.exitNs.oursProcess, x.exitNs.qemu)} | | ${x.exitNs.oursProcess?.n ?? 0} |`);
    lines.push(`| ${m} | exit round trip to a JavaScript handler, ns/exit | ${cell(x.jsExitNs.ours, 0)} | n/a | — | | ${x.jsExitNs.ours.n} |`);
    lines.push(`| ${m} | create + first instruction + destroy, ms — process spawn → exit on both sides (bh-exits vs QEMU) | ${cell(x.lifecycleMs.oursProcess, 2)} | ${cell(x.lifecycleMs.qemu, 1)} | ${ratio(x.lifecycleMs.oursProcess, x.lifecycleMs.qemu)} | | ${x.lifecycleMs.oursProcess?.n ?? 0} |`);
    lines.push(`| ${m} | create + first instruction + destroy, ms — ours in-process (library) | ${cell(x.lifecycleMs.ours, 2)} | ${cell(x.lifecycleMs.qemu, 1)} | ${ratio(x.lifecycleMs.ours, x.lifecycleMs.qemu)} | | ${x.lifecycleMs.ours.n} |`);
  }
  lines.push('');
  for (const e of r.exits) {
    if (!e.result) continue;
    const s = e.result.settings;
    const q = 'version' in e.result.qemu ? `${e.result.qemu.version}: \`${e.result.qemu.binary} ${e.result.qemu.args.join(' ')}\`` : `QEMU skipped: ${e.result.qemu.skipped}`;
    lines.push(`- ${modeLabel(e.location, e.result.virtualization)}: N1 = ${s.n1}, N2 = ${s.n2} (JS handler: ${s.jsN1}, ${s.jsN2}); ${s.runs} counted rounds after ${s.warmups} warm-up. ${q}`);
  }
  lines.push('');

  lines.push('## B. Boot to the userspace marker, and VMM memory overhead (inside the emulated host)', '');
  const b = r.boot.result;
  if (!b) {
    lines.push(r.boot.skipped ? `Skipped: ${r.boot.skipped}` : 'Not run (--only).', '');
  } else {
    lines.push('| mode | metric | ours (bh-boot) | QEMU microvm | ours/QEMU | boots each |', '|---|---|---|---|---|---|');
    const m = modeLabel('emulated-host', 'hardware');
    lines.push(`| ${m} | spawn → marker line, ms | ${cell(b.markerMs.ours, 0)} | ${cell(b.markerMs.qemu, 0)} | ${ratio(b.markerMs.ours, b.markerMs.qemu)} | ${b.markerMs.ours.n} |`);
    lines.push(`| ${m} | overhead at the marker (RSS − guest touched), MiB | ${cell(b.overheadMiB.ours, 2)} | ${cell(b.overheadMiB.qemu, 2)} | ${ratio(b.overheadMiB.ours, b.overheadMiB.qemu)} | ${b.overheadMiB.ours.n} |`);
    lines.push(`| ${m} | process RSS at the marker, MiB | ${cell(b.rssMiB.ours, 1)} | ${cell(b.rssMiB.qemu, 1)} | ${ratio(b.rssMiB.ours, b.rssMiB.qemu)} | |`);
    lines.push(`| ${m} | guest RAM touched (Rss of the guest mapping), MiB | ${cell(b.guestMiB.ours, 1)} | ${cell(b.guestMiB.qemu, 1)} | | |`);
    const counted = b.samples.filter((s) => !s.warmup);
    const med = (vmm: string, f: (s: BootSample) => number): string => {
      const v = counted.filter((s) => s.vmm === vmm).map(f);
      return v.length ? (summarize(v).median / 1024).toFixed(2) : '—';
    };
    lines.push(
      `| ${m} | overhead split (median MiB): file-backed / anonymous (of which kernel+initrd image copies) / other | ${med('ours', (s) => s.memory.breakdownKb.file)} / ${med('ours', (s) => s.memory.breakdownKb.anon)} (${med('ours', (s) => s.memory.imageCopiesKb)}) / ${med('ours', (s) => s.memory.breakdownKb.other)} | ${med('qemu', (s) => s.memory.breakdownKb.file)} / ${med('qemu', (s) => s.memory.breakdownKb.anon)} (${med('qemu', (s) => s.memory.imageCopiesKb)}) / ${med('qemu', (s) => s.memory.breakdownKb.other)} | | |`,
      `| ${m} | overhead with Pss instead of Rss (shared pages divided), MiB | ${med('ours', (s) => s.memory.overheadPssKb)} | ${med('qemu', (s) => s.memory.overheadPssKb)} | | |`,
      `| ${m} | overhead minus the image copies, MiB | ${med('ours', (s) => s.memory.overheadKb - s.memory.imageCopiesKb)} | ${med('qemu', (s) => s.memory.overheadKb - s.memory.imageCopiesKb)} | | |`,
    );
    const uptime = (vmm: string): string => {
      const v = counted.filter((s) => s.vmm === vmm && s.guestUptimeMs !== undefined);
      if (!v.length) return '—';
      return `${summarize(v.map((s) => s.guestUptimeMs!)).median.toFixed(0)} / ${summarize(v.map((s) => s.markerMs - s.guestUptimeMs!)).median.toFixed(0)}`;
    };
    lines.push(`| ${m} | split (median ms): guest uptime at the last kernel line before the marker / the rest (VMM start-up, setup, firmware, load) | ${uptime('ours')} | ${uptime('qemu')} | | |`);
    const self = counted.filter((s) => s.vmm === 'ours' && s.selfReportedMs !== undefined).map((s) => s.selfReportedMs!);
    lines.push('');
    if (self.length) lines.push(`- bh-boot’s own marker figure (its start to the marker): median ${summarize(self).median.toFixed(0)} ms.`);
    lines.push(`- Kernel \`${b.config.kernel}\`, initramfs \`${b.config.initrd}\`, command line \`${b.config.cmdline}\`, ${b.config.memoryMiB} MiB, 1 vCPU, marker “${b.config.marker}”; ${b.config.runs} counted boots each after ${b.config.warmups} warm-up round(s), interleaved. ${b.qemuVersion}.`);
    lines.push('');
  }

  lines.push('## C. Virtio devices (inside the emulated host, same zone kernel, every device attached)', '');
  const d = r.devices?.result;
  if (!d) {
    lines.push(r.devices?.skipped ? `Skipped: ${r.devices.skipped}` : 'Not run (--only).', '');
  } else {
    const m = modeLabel('emulated-host', 'hardware');
    lines.push('| mode | metric | ours (bh-boot) | QEMU microvm | ours/QEMU | ours/QEMU per round | runs each |', '|---|---|---|---|---|---|---|');
    const names: Record<ThroughputKind, string> = {
      blk: `virtio-blk sequential read of ${d.config.diskMiB} MiB, MiB/s (guest clock)`,
      'vsock-out': `vsock guest → host, ${d.config.vsockMiB} MiB, MiB/s (host receiver, first byte → EOF)`,
      'vsock-in': `vsock host → guest, ${d.config.vsockMiB} MiB, MiB/s (guest receiver, first byte → EOF)`,
    };
    for (const kind of ['blk', 'vsock-out', 'vsock-in'] as ThroughputKind[]) {
      const x = d.mibPerS[kind];
      const paired = pairedRatios(d.throughput, kind);
      lines.push(`| ${m} | ${names[kind]} | ${cell(x.ours)} | ${cell(x.qemu)} | ${ratio(x.ours, x.qemu)} | ${paired ? `${cell(paired, 2)}x` : '—'} | ${x.ours.n} |`);
    }
    lines.push(`| ${m} | boot with every device, spawn → marker line, ms | ${cell(d.markerMs.ours, 0)} | ${cell(d.markerMs.qemu, 0)} | ${ratio(d.markerMs.ours, d.markerMs.qemu)} | | ${d.markerMs.ours.n} |`);
    lines.push(`| ${m} | overhead at the marker with every device (RSS − guest touched), MiB | ${cell(d.overheadMiB.ours, 2)} | ${cell(d.overheadMiB.qemu, 2)} | ${ratio(d.overheadMiB.ours, d.overheadMiB.qemu)} | | ${d.overheadMiB.ours.n} |`);
    lines.push('');
    lines.push(
      `- Devices on both sides: one ${d.config.diskMiB} MiB read-only disk (ours: virtio-blk, preadv on the I/O thread; QEMU: virtio-blk-device, its default aio=threads), hvc0 (ours: virtio-console; QEMU: virtio-serial-device + virtconsole), virtio-rng, vsock (ours: virtio-vsock in user space over a Unix socket; QEMU: vhost-vsock-device, the kernel's vhost_vsock). ${d.config.memoryMiB} MiB, 1 vCPU; guest program bench/vmm/guest/devices-init.c, host peer bench/vmm/vsock-peer.c. ${d.config.runs} counted runs each after ${d.config.warmups} warm-up round(s), interleaved. ${d.qemuVersion}.`,
      '',
    );
  }

  lines.push('## Goals', '', '| goal | target | measured | met |', '|---|---|---|---|');
  for (const g of r.goals) lines.push(`| ${g.name} | ${g.target} | ${g.measured} | ${g.met === null ? 'n/a' : g.met ? 'yes' : '**no**'} |`);
  lines.push('', '## What these numbers cannot represent', '');
  for (const c of r.caveats) lines.push(`- ${c}`);
  lines.push('');
  return lines.join('\n');
}
