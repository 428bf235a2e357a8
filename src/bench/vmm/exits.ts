/**
 * Benchmark A: exit round trip and VM create + first instruction + destroy, ours and QEMU, on the
 * same guest image, interleaved round by round (the order alternates each round).
 *
 * ns per exit: each round times both VMMs at N1 and N2 port writes and takes (t(N2) - t(N1)) / (N2 - N1),
 * so everything that does not depend on N (QEMU's process start-up and firmware, our VM setup, the
 * done-port handler) cancels. Lifecycle: N = 0, wall time (see ours.ts and qemu.ts for what it spans).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openHypervisor } from '../../kvm';
import { summarize, type Summary } from '../method/stats';
import { buildExitGuest, withCount } from './guest';
import { oursExitRun, oursLifecycle } from './ours';
import { findQemuBinary, qemuCpuModel, qemuExitArgs, qemuRun } from './qemu';

export interface ExitSettings {
  runs: number;
  warmups: number;
  n1: number;
  n2: number;
  /** N1/N2 for the JS-handler variant (slower per exit: smaller counts). */
  jsN1: number;
  jsN2: number;
}

export interface Figure extends Summary {
  samples: number[];
}

export interface ExitResults {
  /** 'pvm' on this kind of machine; 'hardware' inside the emulated host (SVM emulated by TCG). */
  virtualization: string;
  virtualizationDetail: string;
  settings: ExitSettings;
  qemu: { binary: string; version: string; args: string[] } | { skipped: string };
  /** ns per port-write exit, native path (no JS handler). */
  exitNs: { ours: Figure; qemu?: Figure };
  /** ns per port-write exit with a JavaScript handler on the port (ours only). */
  jsExitNs: { ours: Figure };
  /** VM create + first instruction + destroy, ms. */
  lifecycleMs: { ours: Figure; qemu?: Figure };
  /** Raw per-run times (ns) for auditing the differences. */
  raw: { round: number; warmup: boolean; what: string; ns: number }[];
}

export function figure(values: number[]): Figure {
  return { ...summarize(values), samples: values };
}

export function perExitNs(tN1: number, tN2: number, n1: number, n2: number): number {
  return (tN2 - tN1) / (n2 - n1);
}

export function qemuVersion(qemu: string): string {
  try {
    return execFileSync(qemu, ['--version'], { encoding: 'utf8' }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
}

export async function runExitBenchmark(
  settings: ExitSettings,
  opts: { virtualization: string; virtualizationDetail: string; noQemu?: boolean; log: (m: string) => void },
): Promise<ExitResults> {
  const { log } = opts;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-vmm-exits-'));
  const kvm = openHypervisor();
  try {
    const image = buildExitGuest(work);
    const qemu = opts.noQemu ? undefined : findQemuBinary();
    const cpu = qemuCpuModel(opts.virtualization);
    const files = new Map<number, string>();
    const fileFor = (n: number): string => {
      let f = files.get(n);
      if (!f) {
        f = path.join(work, `exits-${n}.bin`);
        fs.writeFileSync(f, withCount(image, n));
        files.set(n, f);
      }
      return f;
    };
    const raw: ExitResults['raw'] = [];
    const samples = { ours: [] as number[], qemu: [] as number[], js: [] as number[], lifeOurs: [] as number[], lifeQemu: [] as number[] };
    const rounds = settings.warmups + settings.runs;
    for (let round = 0; round < rounds; round++) {
      const warmup = round < settings.warmups;
      const label = warmup ? `warm-up ${round + 1}` : `run ${round - settings.warmups + 1}/${settings.runs}`;
      const t: Record<string, number> = {};
      const time = async (what: string, fn: () => Promise<number>): Promise<void> => {
        const ns = await fn();
        t[what] = ns;
        raw.push({ round, warmup, what, ns });
      };
      const oursSide = async (): Promise<void> => {
        await time('ours N1', async () => (await oursExitRun(kvm, withCount(image, settings.n1))).runNs);
        await time('ours N2', async () => (await oursExitRun(kvm, withCount(image, settings.n2))).runNs);
        await time('ours-js N1', async () => (await oursExitRun(kvm, withCount(image, settings.jsN1), { jsHandler: true })).runNs);
        await time('ours-js N2', async () => (await oursExitRun(kvm, withCount(image, settings.jsN2), { jsHandler: true })).runNs);
        await time('ours lifecycle', () => oursLifecycle(withCount(image, 0)));
      };
      const qemuSide = async (): Promise<void> => {
        if (!qemu) return;
        await time('qemu N1', () => qemuRun(qemu, qemuExitArgs(fileFor(settings.n1), cpu)));
        await time('qemu N2', () => qemuRun(qemu, qemuExitArgs(fileFor(settings.n2), cpu)));
        await time('qemu lifecycle', () => qemuRun(qemu, qemuExitArgs(fileFor(0), cpu)));
      };
      // Alternate which VMM goes first, so a slow phase of the machine is shared between them.
      if (round % 2 === 0) {
        await oursSide();
        await qemuSide();
      } else {
        await qemuSide();
        await oursSide();
      }
      const ours = perExitNs(t['ours N1']!, t['ours N2']!, settings.n1, settings.n2);
      const js = perExitNs(t['ours-js N1']!, t['ours-js N2']!, settings.jsN1, settings.jsN2);
      const q = qemu ? perExitNs(t['qemu N1']!, t['qemu N2']!, settings.n1, settings.n2) : undefined;
      log(
        `exits ${label}: ours ${ours.toFixed(0)} ns/exit (JS handler ${js.toFixed(0)})` +
          (q !== undefined ? `, QEMU ${q.toFixed(0)} ns/exit` : '') +
          `; lifecycle ours ${(t['ours lifecycle']! / 1e6).toFixed(2)} ms` +
          (qemu ? `, QEMU ${(t['qemu lifecycle']! / 1e6).toFixed(1)} ms` : ''),
      );
      if (warmup) continue;
      samples.ours.push(ours);
      samples.js.push(js);
      samples.lifeOurs.push(t['ours lifecycle']! / 1e6);
      if (q !== undefined) {
        samples.qemu.push(q);
        samples.lifeQemu.push(t['qemu lifecycle']! / 1e6);
      }
    }
    return {
      virtualization: opts.virtualization,
      virtualizationDetail: opts.virtualizationDetail,
      settings,
      qemu: qemu
        ? { binary: qemu, version: qemuVersion(qemu), args: qemuExitArgs('IMAGE', cpu) }
        : { skipped: opts.noQemu ? 'QEMU not requested' : 'qemu-system-x86_64 not found (apt-get install qemu-system-x86)' },
      exitNs: { ours: figure(samples.ours), ...(qemu ? { qemu: figure(samples.qemu) } : {}) },
      jsExitNs: { ours: figure(samples.js) },
      lifecycleMs: { ours: figure(samples.lifeOurs), ...(qemu ? { qemu: figure(samples.lifeQemu) } : {}) },
      raw,
    };
  } finally {
    kvm.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
