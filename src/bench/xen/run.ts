/**
 * The Xen benchmark (bench/xen/run.js is its entry): boots the Xen test host (src/host/xen) once,
 * runs dist/cjs/bench/xen/inside.js in its dom0, and writes results.json, report.md and chart.svg.
 *
 *   node bench/xen/run.js [--runs N] [--warmups N] [--out DIR] [--json] [--kernels generic,xen]
 *
 * Progress goes to stderr; report.md (or, with --json, the JSON) to stdout.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs as parseFlags } from 'node:util';
import { BulkheadError } from '../../errors';
import { ensureXenTree, startXenHost } from '../../host/xen';
import { findKernel } from '../../kernel';
import { staticBusybox } from '../../util/busybox';
import { writeCpio } from '../../util/cpio';
import { collectHostFacts } from '../host-facts';
import { defaultOutDir, writeBenchOutputs } from '../report/outputs';
import { renderXenSvg } from './chart';
import { assembleResults, renderMarkdown } from './report';
import type { GuestKernel, InsidePayload, InsideResult } from './types';

export interface XenBenchOptions {
  runs: number;
  warmups: number;
  out: string;
  json: boolean;
  kernels: ('generic' | 'xen')[];
}

const log = (m: string): void => void process.stderr.write(`[bench:xen ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
const MARKER = 'bulkhead-bench-marker';

/** The flags, through node's util.parseArgs (an unknown flag is refused); every value checked. */
export function parseArgs(argv: readonly string[]): XenBenchOptions {
  let v: { runs?: string; warmups?: string; out?: string; json?: boolean; kernels?: string };
  try {
    ({ values: v } = parseFlags({
      args: [...argv],
      options: { runs: { type: 'string' }, warmups: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' }, kernels: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new BulkheadError('INVALID_CONFIG', `${(err as Error).message}; allowed: --runs N, --warmups N, --out DIR, --json, --kernels generic,xen`);
  }
  const int = (flag: string, s: string | undefined, min: number, fallback: number): number => {
    if (s === undefined) return fallback;
    const n = Number(s);
    if (!Number.isInteger(n) || n < min) throw new BulkheadError('INVALID_CONFIG', `invalid ${flag}: allowed an integer >= ${min}`);
    return n;
  };
  let kernels: XenBenchOptions['kernels'] = ['generic', 'xen'];
  if (v.kernels !== undefined) {
    const ks = v.kernels.split(',');
    if (ks.some((k) => k !== 'generic' && k !== 'xen')) throw new BulkheadError('INVALID_CONFIG', 'invalid --kernels: allowed generic, xen (comma-separated)');
    kernels = ks as XenBenchOptions['kernels'];
  }
  return {
    runs: int('--runs', v.runs, 1, 5),
    warmups: int('--warmups', v.warmups, 0, 1),
    out: v.out !== undefined ? path.resolve(v.out) : defaultOutDir('bench-xen'),
    json: v.json === true,
    kernels,
  };
}

function writeInitramfs(file: string): void {
  fs.writeFileSync(
    file,
    writeCpio([
      { name: 'bin', type: 'dir', mode: 0o755 },
      { name: 'bin/busybox', type: 'file', mode: 0o755, data: staticBusybox() },
      { name: 'dev', type: 'dir', mode: 0o755 },
      { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
      { name: 'init', type: 'file', mode: 0o755, data: `#!/bin/busybox sh\necho ${MARKER}\n/bin/busybox sleep 1000\n` },
    ]),
  );
}

export async function runXenBench(o: XenBenchOptions): Promise<void> {
  const host = collectHostFacts();
  const startedAt = new Date().toISOString();
  const tree = await ensureXenTree({ log });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-xen-bench-'));
  const initrd = path.join(dir, 'initramfs.cpio');
  writeInitramfs(initrd);
  const kernels: GuestKernel[] = [];
  const skipped: string[] = [];
  for (const k of o.kernels) {
    if (k === 'generic') kernels.push({ label: 'generic', kernel: path.join(tree.root, 'boot', `vmlinuz-${tree.kernelRelease}`), initrd });
    else {
      // Only a cached build: building it here would take minutes and change what is measured.
      const built = await findKernel({ config: 'xen' });
      if (built) kernels.push({ label: 'xen', kernel: built.vmlinux, initrd });
      else skipped.push('the xen zone kernel: not in the kernel cache (build it with `npm run kernels`)');
    }
  }
  const payload: InsidePayload = {
    runs: o.runs,
    warmups: o.warmups,
    kernels,
    cmdline: 'console=hvc0 rdinit=/init loglevel=0 quiet',
    memoryMiB: 128,
    marker: MARKER,
    evtchnOps: 200,
    grantOps: 100,
    pollMs: 100,
    settleMs: 500,
    timeoutMs: 180_000,
  };
  log(`booting the Xen test host; then ${o.warmups} warm-up + ${o.runs} rounds of ${kernels.map((k) => k.label).join(', ')} × (ours, xl)`);
  const session = await startXenHost({ writableDirs: [dir], log });
  let inside: InsideResult;
  try {
    log(`Xen host up in ${(session.bootMs / 1000).toFixed(1)} s; measuring in dom0`);
    const r = await session.runNode([path.join(__dirname, 'inside.js'), JSON.stringify(payload)], { timeoutMs: 3_600_000 });
    if (r.exitCode !== 0) throw new BulkheadError('BENCH_FAILED', `inside.js failed (${r.exitCode}):\n${r.stderr}`);
    inside = JSON.parse(r.stdout) as InsideResult;
  } finally {
    await session.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const facts = { ...host, loadAverageAtEnd: os.loadavg().map((l) => Math.round(l * 100) / 100) };
  const results = assembleResults({ startedAt, finishedAt: new Date().toISOString(), host: facts, xenHostBootMs: session.bootMs, payload, inside, skipped });
  const markdown = renderMarkdown(results);
  const written = writeBenchOutputs(o.out, { results, markdown, svg: renderXenSvg(results) });
  process.stdout.write(o.json ? JSON.stringify(results, null, 2) + '\n' : markdown);
  log(`wrote ${written.resultsJson}, ${written.reportMd}, ${written.chartSvg}`);
}

if (require.main === module) {
  runXenBench(parseArgs(process.argv.slice(2))).catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
