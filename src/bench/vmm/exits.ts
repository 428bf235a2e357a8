/**
 * Benchmark A: exit round trip and VM create + first instruction + destroy, ours and QEMU, on the
 * same guest image, interleaved round by round (the order alternates each round).
 *
 * ns per exit: each round times both VMMs at N1 and N2 port writes and takes (t(N2) - t(N1)) / (N2 - N1),
 * so everything that does not depend on N (QEMU's process start-up and firmware, our VM setup, the
 * done-port handler) cancels. Lifecycle: N = 0, wall time (see ours.ts and qemu.ts for what it spans).
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nativeLibrarySources } from './native-sources';
import { openHypervisor } from '../../kvm';
import { scheduledRounds } from '../method/schedule';
import { summarize, type Summary } from '../method/stats';
import { onInterrupt } from './cleanup';
import { buildExitGuest, guestSourceDir, withCount } from './guest';
import { oursExitRun, oursLifecycle } from './ours';
import { killQemuChildren, qemuCpuModel, qemuExitArgs, qemuRun } from './qemu';
import { findQemu } from '../../host/emulated/qemu';

export interface ExitSettings {
  runs: number;
  warmups: number;
  /** The rounds' order is shuffled from it (method/schedule.ts); recorded with the results. */
  seed: number;
  n1: number;
  n2: number;
  /** N1/N2 for the JS-handler variant (slower per exit: smaller counts). */
  jsN1: number;
  jsN2: number;
  /** Already-built kvm-floor and bh-exits (compiling them under TCG takes minutes): paths. */
  prebuilt?: { floor?: string; bhExits?: string };
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
  /**
   * ns per port-write exit, native path (no JS handler). oursProcess: the C core as its own process
   * (bh-exits.c), timed exactly like QEMU; floor: raw KVM_RUN loop, no VMM (kvm-floor.c).
   */
  exitNs: { ours: Figure; oursProcess?: Figure; qemu?: Figure; floor?: Figure };
  /** ns per port-write exit with a JavaScript handler on the port (ours only). */
  jsExitNs: { ours: Figure };
  /** VM create + first instruction + destroy, ms (oursProcess: bh-exits spawn to exit, like QEMU). */
  lifecycleMs: { ours: Figure; oursProcess?: Figure; qemu?: Figure };
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

/** Compiles bench/vmm/kvm-floor.c into `dir`; undefined (with the reason logged) when cc fails. */
export function buildFloor(dir: string, log: (m: string) => void): string | undefined {
  const out = path.join(dir, 'kvm-floor');
  try {
    execFileSync('cc', ['-O2', '-o', out, path.join(guestSourceDir(), '..', 'kvm-floor.c')], { stdio: ['ignore', 'ignore', 'pipe'] });
    return out;
  } catch (err) {
    log(`kvm-floor not built, no floor figure: ${(err as { stderr?: Buffer }).stderr?.toString().slice(-500) ?? (err as Error).message}`);
    return undefined;
  }
}

/** bench/vmm/bh-exits.c linked with the native library (as native/Makefile links bh-boot). */
export function buildBhExits(dir: string, log: (m: string) => void): string | undefined {
  const native = path.join(guestSourceDir(), '..', '..', '..', 'native');
  const out = path.join(dir, 'bh-exits');
  try {
    const sources = [path.join(guestSourceDir(), '..', 'bh-exits.c'), ...nativeLibrarySources(native)];
    execFileSync('cc', ['-std=gnu11', '-O2', '-pthread', '-Iinclude', '-I.', ...sources, '-o', out], { cwd: native, stdio: ['ignore', 'ignore', 'pipe'] });
    return out;
  } catch (err) {
    log(`bh-exits not built, no process figures for ours: ${(err as { stderr?: Buffer }).stderr?.toString().slice(-500) ?? (err as Error).message}`);
    return undefined;
  }
}

/** bh-exits IMAGE: spawn to exit, ns (the same clock QEMU gets); checks its report. */
async function bhExitsRun(tool: string, image: string, count: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const { stdout } = await promisify(execFile)(tool, [image], { timeout: 180_000 });
  const ns = Number(process.hrtime.bigint() - t0);
  const r = JSON.parse(stdout) as { unhandledPio: number; value: number };
  if (r.unhandledPio !== count) throw new Error(`bh-exits counted ${r.unhandledPio} exits, expected ${count}`);
  return ns;
}

async function floorRun(tool: string, image: string, n1: number, n2: number): Promise<{ ns1: number; ns2: number }> {
  const { stdout } = await promisify(execFile)(tool, [image, String(n1), String(n2)], { timeout: 180_000 });
  return JSON.parse(stdout) as { ns1: number; ns2: number };
}

export async function runExitBenchmark(
  settings: ExitSettings,
  opts: { virtualization: string; virtualizationDetail: string; noQemu?: boolean; log: (m: string) => void },
): Promise<ExitResults> {
  const { log } = opts;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-vmm-exits-'));
  const unregister = onInterrupt(() => {
    killQemuChildren();
    fs.rmSync(work, { recursive: true, force: true });
  });
  const kvm = openHypervisor();
  try {
    const image = buildExitGuest(work);
    const qemu = opts.noQemu ? undefined : findQemu();
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
    const floor = settings.prebuilt?.floor ?? buildFloor(work, log);
    const bhExits = settings.prebuilt?.bhExits ?? buildBhExits(work, log);
    const raw: ExitResults['raw'] = [];
    const samples = { floor: [] as number[], proc: [] as number[], lifeProc: [] as number[], ours: [] as number[], qemu: [] as number[], js: [] as number[], lifeOurs: [] as number[], lifeQemu: [] as number[] };
    for (const { round, warmup, label, order } of scheduledRounds(['ours', 'qemu', 'ours-process', 'floor'] as const, settings.runs, settings.warmups, settings.seed)) {
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
      const processSide = async (): Promise<void> => {
        if (!bhExits) return;
        await time('ours-process N1', () => bhExitsRun(bhExits, fileFor(settings.n1), settings.n1));
        await time('ours-process N2', () => bhExitsRun(bhExits, fileFor(settings.n2), settings.n2));
        await time('ours-process lifecycle', () => bhExitsRun(bhExits, fileFor(0), 0));
      };
      const floorSide = async (): Promise<void> => {
        if (!floor) return;
        const f = await floorRun(floor, fileFor(0), settings.n1, settings.n2);
        t['floor N1'] = f.ns1;
        t['floor N2'] = f.ns2;
        raw.push({ round, warmup, what: 'floor N1', ns: f.ns1 }, { round, warmup, what: 'floor N2', ns: f.ns2 });
      };
      // Shuffled per round, so a slow phase of the machine is shared between them.
      const sides = { ours: oursSide, qemu: qemuSide, 'ours-process': processSide, floor: floorSide };
      for (const side of order) await sides[side]();
      const ours = perExitNs(t['ours N1']!, t['ours N2']!, settings.n1, settings.n2);
      const js = perExitNs(t['ours-js N1']!, t['ours-js N2']!, settings.jsN1, settings.jsN2);
      const q = qemu ? perExitNs(t['qemu N1']!, t['qemu N2']!, settings.n1, settings.n2) : undefined;
      const pr = bhExits ? perExitNs(t['ours-process N1']!, t['ours-process N2']!, settings.n1, settings.n2) : undefined;
      const fl = floor ? perExitNs(t['floor N1']!, t['floor N2']!, settings.n1, settings.n2) : undefined;
      log(
        `exits ${label}: ours ${ours.toFixed(0)} ns/exit (JS handler ${js.toFixed(0)})` +
          (q !== undefined ? `, QEMU ${q.toFixed(0)} ns/exit` : '') +
          (pr !== undefined ? `, ours as a process ${pr.toFixed(0)} ns/exit` : '') +
          (fl !== undefined ? `, raw KVM loop ${fl.toFixed(0)} ns/exit` : '') +
          `; lifecycle ours ${(t['ours lifecycle']! / 1e6).toFixed(2)} ms` +
          (bhExits ? `, ours as a process ${(t['ours-process lifecycle']! / 1e6).toFixed(1)} ms` : '') +
          (qemu ? `, QEMU ${(t['qemu lifecycle']! / 1e6).toFixed(1)} ms` : ''),
      );
      if (warmup) continue;
      samples.ours.push(ours);
      samples.js.push(js);
      samples.lifeOurs.push(t['ours lifecycle']! / 1e6);
      if (fl !== undefined) samples.floor.push(fl);
      if (pr !== undefined) {
        samples.proc.push(pr);
        samples.lifeProc.push(t['ours-process lifecycle']! / 1e6);
      }
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
      exitNs: { ours: figure(samples.ours), ...(bhExits ? { oursProcess: figure(samples.proc) } : {}), ...(qemu ? { qemu: figure(samples.qemu) } : {}), ...(floor ? { floor: figure(samples.floor) } : {}) },
      jsExitNs: { ours: figure(samples.js) },
      lifecycleMs: { ours: figure(samples.lifeOurs), ...(bhExits ? { oursProcess: figure(samples.lifeProc) } : {}), ...(qemu ? { qemu: figure(samples.lifeQemu) } : {}) },
      raw,
    };
  } finally {
    kvm.close();
    fs.rmSync(work, { recursive: true, force: true });
    unregister();
  }
}
