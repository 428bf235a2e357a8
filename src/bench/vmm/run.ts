/**
 * Side-by-side benchmarks of our VMM against QEMU (`npm run bench:vmm`):
 *   A. exit round trip and VM create + first instruction + destroy, on this host's /dev/kvm and
 *      inside the emulated host;
 *   B. boot to the userspace marker and VMM memory overhead, inside the emulated host.
 *
 *   node dist/cjs/bench/vmm/run.js [--runs N] [--warmups N] [--json] [--out DIR] [--only exits|boot]
 *                                  [--no-emulated] [--quick]
 *
 * Progress goes to stderr; the markdown table (or, with --json, the JSON) to stdout; both are written
 * to --out (default bench/vmm/results). `--inner exits|boot --payload JSON` is what runs inside the
 * emulated host: it prints one JSON document on stdout.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BulkheadError } from '../../errors';
import { EmulatedHost } from '../../host/emulated';
import { collectHostFacts } from '../host-facts';
import { runBootBenchmark, type BootConfig } from './boot';
import { onInterrupt } from './cleanup';
import { buildNativeTools, cachedKernel, packageRoot, runInner, writeInitramfs } from './emulated';
import { buildBhExits, buildFloor, qemuVersion, runExitBenchmark, type ExitResults, type ExitSettings } from './exits';
import { killQemuChildren, findQemuBinary } from './qemu';
import { caveatsFor, goalsFor, renderMarkdown, summarizeBoot, type BootResults, type VmmBenchResults } from './report';

interface Options {
  runs: number;
  warmups: number;
  json: boolean;
  out: string;
  only?: 'exits' | 'boot';
  emulated: boolean;
  quick: boolean;
  inner?: 'exits' | 'boot';
  payload?: string;
}

const log = (m: string): void => void process.stderr.write(`[bench:vmm ${new Date().toISOString().slice(11, 19)}] ${m}\n`);


export function parseArgs(argv: readonly string[]): Options {
  const o: Options = { runs: 5, warmups: 1, json: false, out: path.join(packageRoot(), 'bench', 'vmm', 'results'), emulated: true, quick: false };
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
    else if (a === '--json') o.json = true;
    else if (a === '--out') o.out = path.resolve(value());
    else if (a === '--only') {
      const v = value();
      if (v !== 'exits' && v !== 'boot') throw new BulkheadError('INVALID_CONFIG', `invalid --only: ${v}; allowed: exits, boot`);
      o.only = v;
    } else if (a === '--no-emulated') o.emulated = false;
    else if (a === '--quick') o.quick = true;
    else if (a === '--inner') {
      const v = value();
      if (v !== 'exits' && v !== 'boot') throw new BulkheadError('INVALID_CONFIG', `invalid --inner: ${v}`);
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
export function exitSettings(location: 'host' | 'emulated-host', runs: number, warmups: number, quick: boolean): ExitSettings {
  const scale = quick ? 0.05 : 1;
  const base = location === 'host' ? { n1: 10_000, n2: 110_000, jsN1: 2_000, jsN2: 22_000 } : { n1: 2_000, n2: 42_000, jsN1: 200, jsN2: 2_200 };
  const s = (n: number): number => Math.max(1, Math.round(n * scale));
  return { runs, warmups, n1: s(base.n1), n2: s(base.n2), jsN1: s(base.jsN1), jsN2: s(base.jsN2) };
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
  log(`host virtualization: ${host.virtualization} (${host.virtualizationDetail}); load ${host.loadAverageAtStart.join(' ')}`);

  if (o.only !== 'boot') {
    if (host.virtualization === 'none') exits.push({ location: 'host', skipped: host.virtualizationDetail });
    else {
      log('A on this host: exits and lifecycle, ours and QEMU interleaved ...');
      const result = await runExitBenchmark(exitSettings('host', o.runs, o.warmups, o.quick), {
        virtualization: host.virtualization,
        virtualizationDetail: host.virtualizationDetail,
        log,
      });
      exits.push({ location: 'host', result });
    }
  }

  let skipEmulated: string | undefined = o.emulated ? undefined : 'not requested (--no-emulated)';
  const qemu = findQemuBinary();
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
    if (o.only !== 'boot') exits.push({ location: 'emulated-host', skipped: skipEmulated });
    if (o.only !== 'exits') boot = { skipped: skipEmulated };
  } else {
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-vmm-bench-'));
    let emulated: EmulatedHost | undefined;
    const unregister = onInterrupt(async () => {
      await emulated?.stop({ timeoutMs: 1000 });
      fs.rmSync(work, { recursive: true, force: true });
    });
    try {
      log('building bh-boot and the guest init from native/ ...');
      const tools = buildNativeTools(work);
      // Built here, before the emulated host mounts the root (compiling under TCG takes minutes).
      const prebuilt = { floor: buildFloor(work, log), bhExits: buildBhExits(work, log) };
      const initrd = path.join(work, 'initramfs.cpio');
      writeInitramfs(initrd, tools.init);
      log('starting the emulated host (QEMU TCG, nested SVM) ...');
      emulated = await EmulatedHost.start({ kernel: hostKernel!.vmlinux });
      log(`emulated host up in ${emulated.bootMs} ms (kernel ${hostKernel!.info.key}, ${emulated.kernelRelease})`);
      if (o.only !== 'boot') {
        try {
          const settings = { ...exitSettings('emulated-host', o.runs, o.warmups, o.quick), prebuilt };
          const result = await runInner<ExitResults>(emulated, 'exits', settings, 30 * 60_000);
          exits.push({ location: 'emulated-host', result });
        } catch (err) {
          log(`A inside the emulated host failed: ${(err as Error).message}`);
          exits.push({ location: 'emulated-host', skipped: `failed: ${(err as Error).message.slice(0, 500)}` });
        }
      }
      if (o.only !== 'exits') {
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
    } finally {
      await emulated?.stop();
      fs.rmSync(work, { recursive: true, force: true });
      unregister();
    }
  }

  const partial = {
    startedAt,
    finishedAt: new Date().toISOString(),
    host: { ...host, loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) },
    exits,
    boot,
  };
  return { format: 'bulkhead-bench-vmm/1', ...partial, goals: goalsFor(partial), caveats: caveatsFor(partial) };
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  if (o.inner) return inner(o);
  const results = await runVmmBenchmarks(o);
  fs.mkdirSync(o.out, { recursive: true });
  const md = renderMarkdown(results);
  fs.writeFileSync(path.join(o.out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  fs.writeFileSync(path.join(o.out, 'results.md'), md);
  log(`wrote ${path.join(o.out, 'results.json')} and results.md`);
  process.stdout.write(o.json ? `${JSON.stringify(results, null, 2)}\n` : md);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    killQemuChildren();
    process.stderr.write(`bench:vmm failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
