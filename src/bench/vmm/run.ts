/**
 * Side-by-side benchmarks of our VMM against QEMU (`npm run bench:vmm`):
 *   A. exit round trip and VM create + first instruction + destroy, on this host's /dev/kvm and
 *      inside the emulated host;
 *   B. boot to the userspace marker and VMM memory overhead, inside the emulated host;
 *   C. the virtio devices (blk read, vsock both ways, boot with every device), inside the emulated host.
 *
 *   node dist/cjs/bench/vmm/run.js [--runs N] [--warmups N] [--seed N] [--json] [--out DIR] [--only exits|boot|devices]
 *                                  [--no-emulated] [--quick]
 *
 * Progress goes to stderr; the markdown table (or, with --json, the JSON) to stdout; results.json,
 * report.md and chart.svg are written to --out (default: a new bulkhead-bench-vmm-<time> directory
 * under the system's temporary directory, never the source tree). `--inner exits|boot|devices --payload JSON` is what runs inside the emulated
 * host: it prints one JSON document on stdout.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { collectHostFacts } from '../host-facts';
import { runBootBenchmark, type BootConfig } from './boot';
import { runDevicesBenchmark, type DevicesConfig, type DevicesInnerResult } from './devices';
import { onInterrupt } from './cleanup';
import { buildNativeTools, cachedKernel, relayInnerLine, runInner, writeInitramfs } from './emulated';
import { withEmulatedHost, type NestedHost } from '../method/emulated-host';
import { packageRoot } from '../../util/package-root';
import { buildBhExits, buildFloor, qemuVersion, runExitBenchmark, type ExitResults, type ExitSettings } from './exits';
import { killQemuChildren } from './qemu';
import { findQemu } from '../../host/emulated/qemu';
import { newSeed } from '../method/schedule';
import { writeBenchOutputs, defaultOutDir } from '../report/outputs';
import { renderVmmSvg } from './chart';
import { caveatsFor, goalsFor, renderMarkdown, summarizeBoot, summarizeDevices, type BootResults, type VmmBenchResults } from './report';

interface Options {
  runs: number;
  warmups: number;
  seed: number;
  json: boolean;
  out: string;
  only?: 'exits' | 'boot' | 'devices';
  emulated: boolean;
  quick: boolean;
  inner?: 'exits' | 'boot' | 'devices';
  payload?: string;
}

const log = (m: string): void => void process.stderr.write(`[bench:vmm ${new Date().toISOString().slice(11, 19)}] ${m}\n`);


export function parseArgs(argv: readonly string[]): Options {
  const o: Options = { runs: 5, warmups: 1, seed: newSeed(), json: false, out: defaultOutDir('bench-vmm'), emulated: true, quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new BulkheadError('INVALID_CONFIG', `${a} needs a value`);
      return v;
    };
    const int = (min: number): number => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < min) throw new BulkheadError('INVALID_CONFIG', `invalid ${a}: allowed an integer >= ${min}`);
      return v;
    };
    if (a === '--runs') o.runs = int(1);
    else if (a === '--warmups') o.warmups = int(0);
    else if (a === '--seed') {
      o.seed = int(0);
      if (o.seed >= 2 ** 32) throw new BulkheadError('INVALID_CONFIG', `invalid --seed: allowed an integer in [0, 2^32)`);
    }
    else if (a === '--json') o.json = true;
    else if (a === '--out') o.out = path.resolve(value());
    else if (a === '--only') {
      const v = value();
      if (v !== 'exits' && v !== 'boot' && v !== 'devices') throw new BulkheadError('INVALID_CONFIG', `invalid --only: ${v}; allowed: exits, boot, devices`);
      o.only = v;
    } else if (a === '--no-emulated') o.emulated = false;
    else if (a === '--quick') o.quick = true;
    else if (a === '--inner') {
      const v = value();
      if (v !== 'exits' && v !== 'boot' && v !== 'devices') throw new BulkheadError('INVALID_CONFIG', `invalid --inner: ${v}`);
      o.inner = v;
    } else if (a === '--payload') o.payload = value();
    else throw new BulkheadError('INVALID_CONFIG', `unknown argument: ${a}`);
  }
  return o;
}

/**
 * Loop counts: N2 - N1 large enough that the difference dwarfs the run-to-run noise of start-up
 * (QEMU's process start varies by tens of ms here). Exits cost ~15-20 µs on PVM; inside the emulated
 * host each exit is a nested #VMEXIT emulated by TCG, so fewer.
 */
export function exitSettings(location: 'host' | 'emulated-host', runs: number, warmups: number, seed: number, quick: boolean): ExitSettings {
  const scale = quick ? 0.05 : 1;
  const base = location === 'host' ? { n1: 10_000, n2: 110_000, jsN1: 2_000, jsN2: 22_000 } : { n1: 2_000, n2: 42_000, jsN1: 200, jsN2: 2_200 };
  const s = (n: number): number => Math.max(1, Math.round(n * scale));
  return { runs, warmups, seed, n1: s(base.n1), n2: s(base.n2), jsN1: s(base.jsN1), jsN2: s(base.jsN2) };
}

// ------------------------------------------------------------------------------------------------
// Inside the emulated host

async function inner(o: Options): Promise<void> {
  const payload = JSON.parse(o.payload ?? '{}') as Record<string, unknown>;
  if (o.inner === 'exits') {
    const facts = collectHostFacts();
    const r = await runExitBenchmark(payload as unknown as ExitSettings, {
      virtualization: facts.virtualization,
      virtualizationDetail: `${facts.virtualizationDetail}; inside the emulated host (QEMU TCG)`,
      log,
    });
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } else if (o.inner === 'devices') {
    const r = await runDevicesBenchmark(payload as unknown as DevicesConfig, log);
    process.stdout.write(`${JSON.stringify({ ...r, qemuVersion: qemuVersion((payload as unknown as DevicesConfig).qemu) })}\n`);
  } else {
    const samples = await runBootBenchmark(payload as unknown as BootConfig, log);
    process.stdout.write(`${JSON.stringify({ samples, qemuVersion: qemuVersion((payload as unknown as BootConfig).qemu) })}\n`);
  }
}

// ------------------------------------------------------------------------------------------------
// Outside: prepare, start the emulated host, collect, report

export async function runVmmBenchmarks(o: Options): Promise<VmmBenchResults> {
  const startedAt = new Date().toISOString();
  const host = collectHostFacts();
  const exits: VmmBenchResults['exits'] = [];
  let boot: VmmBenchResults['boot'] = {};
  let devices: NonNullable<VmmBenchResults['devices']> = {};
  const wants = (what: 'exits' | 'boot' | 'devices'): boolean => o.only === undefined || o.only === what;
  log(`host virtualization: ${host.virtualization} (${host.virtualizationDetail}); load ${host.loadAverageAtStart.join(' ')}`);

  if (wants('exits')) {
    if (host.virtualization === 'none') exits.push({ location: 'host', skipped: host.virtualizationDetail });
    else {
      log('A on this host: exits and lifecycle, ours and QEMU interleaved ...');
      const result = await runExitBenchmark(exitSettings('host', o.runs, o.warmups, o.seed, o.quick), {
        virtualization: host.virtualization,
        virtualizationDetail: host.virtualizationDetail,
        log,
      });
      exits.push({ location: 'host', result });
    }
  }

  let skipEmulated: string | undefined = o.emulated ? undefined : 'not requested (--no-emulated)';
  const qemu = findQemu();
  if (!skipEmulated && !qemu) skipEmulated = 'qemu-system-x86_64 not installed (apt-get install qemu-system-x86)';
  const hostFound = skipEmulated ? undefined : await cachedKernel('host');
  const zoneFound = skipEmulated ? undefined : await cachedKernel('zone');
  const hostKernel = hostFound?.kernel;
  const zoneKernel = zoneFound?.kernel;
  for (const [name, found] of [['host', hostFound], ['zone', zoneFound]] as const) {
    if (found && !found.current) log(`the ${name} kernel for the current config is not built: using the cached ${found.kernel.info.key} (built ${found.kernel.info.builtAt})`);
  }
  if (!skipEmulated && (!hostKernel || !zoneKernel)) {
    skipEmulated = `kernels not built (${!hostKernel ? 'host' : ''}${!hostKernel && !zoneKernel ? ', ' : ''}${!zoneKernel ? 'zone' : ''}): run npm run kernels`;
  }

  if (skipEmulated) {
    if (wants('exits')) exits.push({ location: 'emulated-host', skipped: skipEmulated });
    if (wants('boot')) boot = { skipped: skipEmulated };
    if (wants('devices')) devices = { skipped: skipEmulated };
  } else {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-vmm-bench-'));
    let emulated: NestedHost | undefined;
    const unregister = onInterrupt(async () => {
      await emulated?.stop();
      fs.rmSync(work, { recursive: true, force: true });
    });
    try {
      log('building bh-boot and the guest init from native/ ...');
      const tools = buildNativeTools(work);
      // Built here, before the emulated host mounts the root (compiling under TCG takes minutes).
      const prebuilt = { floor: buildFloor(work, log), bhExits: buildBhExits(work, log) };
      const initrd = path.join(work, 'initramfs.cpio');
      writeInitramfs(initrd, tools.init);
      const devicesInitrd = path.join(work, 'devices-initramfs.cpio');
      writeInitramfs(devicesInitrd, tools.devicesInit);
      await withEmulatedHost({ log, kernel: hostKernel!.vmlinux, onInnerLine: relayInnerLine }, async (host) => {
        emulated = host;
        log(`emulated host kernel: ${hostKernel!.info.key}`);
        if (wants('exits')) {
          try {
            const settings = { ...exitSettings('emulated-host', o.runs, o.warmups, o.seed, o.quick), prebuilt };
            const result = await runInner<ExitResults>(emulated, 'exits', settings, 30 * 60_000);
            exits.push({ location: 'emulated-host', result });
          } catch (err) {
            log(`A inside the emulated host failed: ${(err as Error).message}`);
            exits.push({ location: 'emulated-host', skipped: `failed: ${(err as Error).message.slice(0, 500)}` });
          }
        }
        if (wants('boot')) {
          const config: BootConfig = {
            bhBoot: tools.bhBoot,
            qemu: qemu!,
            kernel: zoneKernel!.vmlinux,
            initrd,
            cmdline: 'console=ttyS0 reboot=t panic=-1',
            marker: 'BH-INIT',
            memoryMiB: 256,
            runs: o.runs,
            warmups: o.warmups,
            seed: o.seed,
            timeoutMs: 120_000,
          };
          try {
            const inner = await runInner<{ samples: BootResults['samples']; qemuVersion: string }>(emulated, 'boot', config, 60 * 60_000);
            boot = {
              result: {
                location: 'emulated-host',
                virtualization: 'hardware (nested, SVM emulated by TCG)',
                config: { ...config },
                qemuVersion: inner.qemuVersion,
                samples: inner.samples,
                ...summarizeBoot(inner.samples),
              },
            };
          } catch (err) {
            log(`B failed: ${(err as Error).message}`);
            boot = { skipped: `failed: ${(err as Error).message.slice(0, 500)}` };
          }
        }
        if (wants('devices')) {
          const config: DevicesConfig = {
            bhBoot: tools.bhBoot,
            qemu: qemu!,
            peer: tools.vsockPeer,
            kernel: zoneKernel!.vmlinux,
            initrd: devicesInitrd,
            // Inside the emulated host, on its own filesystem: Unix sockets cannot live on the 9p root.
            workDir: `/tmp/bulkhead-devices-bench-${process.pid}`,
            diskMiB: o.quick ? 32 : 256,
            vsockMiB: o.quick ? 8 : 64,
            memoryMiB: 256,
            runs: o.runs,
            warmups: o.warmups,
            seed: o.seed,
            timeoutMs: 300_000,
          };
          try {
            const inner = await runInner<DevicesInnerResult>(emulated, 'devices', config, 3 * 60 * 60_000);
            const { bhBoot: _b, qemu: _q, peer: _p, workDir: _w, ...shown } = config;
            devices = {
              result: {
                location: 'emulated-host',
                virtualization: 'hardware (nested, SVM emulated by TCG)',
                config: shown,
                qemuVersion: inner.qemuVersion ?? '',
                throughput: inner.throughput,
                boot: inner.boot,
                ...summarizeDevices(inner.throughput, inner.boot),
              },
            };
          } catch (err) {
            log(`C failed: ${(err as Error).message}`);
            devices = { skipped: `failed: ${(err as Error).message.slice(0, 500)}` };
          }
        }
      });
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
      unregister();
    }
  }

  const partial = {
    startedAt,
    finishedAt: new Date().toISOString(),
    seed: o.seed,
    host: { ...host, loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) },
    exits,
    boot,
    devices,
  };
  return { format: 'bulkhead-bench-vmm/1', ...partial, goals: goalsFor(partial), caveats: caveatsFor(partial) };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.inner) return inner(o);
  const results = await runVmmBenchmarks(o);
  const md = renderMarkdown(results);
  const written = writeBenchOutputs(o.out, { results, markdown: md, svg: renderVmmSvg(results) });
  log(`wrote ${written.resultsJson}, ${written.reportMd} and ${written.chartSvg}`);
  process.stdout.write(o.json ? `${JSON.stringify(results, null, 2)}\n` : md);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    killQemuChildren();
    process.stderr.write(`bench:vmm failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
