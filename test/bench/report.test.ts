// What a reader gets: unavailable runners listed with their reasons, the zone headline, a table row per
// runner and metric, and a chart with one bar per (metric, runner) that renders as valid SVG.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import type { BenchResults } from '../../src/bench/method/results';
import { runBenchmark } from '../../src/bench/method/run';
import { renderMarkdown, renderSvg, writeReport } from '../../src/bench/report';
import type { BenchRunner } from '../../src/bench/runners/runner';

t.test('a real run with an unavailable runner: skipped with its reason, in results and report', async (t) => {
  // A made-up unavailable runner: a real one's availability depends on the machine.
  const unavailable: BenchRunner = {
    name: 'runsc', location: 'host', id: 'runsc', description: 'a runner that cannot work here', iterationScale: {},
    probe: async () => ({ available: false, reason: 'not on this machine (test)' }),
    version: async () => undefined, prepare: async () => undefined, run: async () => [], cleanup: async () => undefined,
  };
  const results = await runBenchmark({ runners: ['bare', unavailable], locations: ['host'], groups: ['syscall'], runs: 1, warmups: 0, scale: 0.001 });
  const skipped = results.runners.find((r) => r.id === 'runsc');
  t.equal(skipped?.status, 'skipped');
  t.equal(skipped?.reason, 'not on this machine (test)');
  t.equal(results.runners.find((r) => r.id === 'bare')?.status, 'ok');
  t.equal(results.baseline.runnerId, null, 'no docker or runc: no baseline');
  t.match(results.baseline.note, /no baseline/);
  for (const m of results.metrics) t.equal(m.byRunner['bare']?.ratio, null, `${m.test}: no ratio without a baseline`);
  t.ok(results.host.cpuModel.length > 0 && ['hardware', 'pvm', 'none'].includes(results.host.virtualization), 'host facts recorded');

  const md = renderMarkdown(results);
  t.match(md, /## Headline: zone vs bare Docker for CPU, memory, syscalls/);
  t.match(md, /\*\*No zone figures:\*\* the zone runner was not requested in this run\./);
  t.match(md, /\| runsc \(gVisor: [^|]*ptrace only\) \| skipped \| not on this machine \(test\) \|/, 'skipped runner in the table of runners that did not run');
  t.match(md, new RegExp(`Virtualization on this host: \\*\\*${results.host.virtualization}\\*\\*`));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-report-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const written = writeReport(results, dir);
  t.same(JSON.parse(fs.readFileSync(written.resultsJson, 'utf8')), JSON.parse(JSON.stringify(results)), 'results.json holds the results');
  t.ok(fs.readFileSync(written.chartSvg, 'utf8').startsWith('<svg'), 'a chart is written even without a baseline');
});

/** Fixed results: docker baseline, runc about equal, runsc 100x on syscalls. */
function fixture(): BenchResults {
  const summary = (v: number, ratio: number) => ({ median: v, min: v * 0.9, max: v * 1.1, n: 5, samples: [v, v, v, v, v], ratio });
  const metric = (test: string, group: 'cpu' | 'syscall', title: string, unit: string, better: 'lower' | 'higher', rRunc: number, rRunsc: number) => ({
    test, group, title, unit, better,
    byRunner: { docker: summary(100, 1), runc: summary(100 * rRunc, rRunc), runsc: summary(100 * rRunsc, rRunsc) },
  });
  const runner = (id: 'docker' | 'runc' | 'runsc', iterationScale = {}) => ({ id, name: id, location: 'host' as const, description: id, status: 'ok' as const, iterations: {}, iterationScale });
  return {
    format: 'bulkhead-bench/1',
    startedAt: '2026-11-23T12:00:00.000Z',
    finishedAt: '2026-11-23T12:05:00.000Z',
    settings: { groups: ['cpu', 'syscall'], runs: 5, warmups: 1, scale: 1, seed: 1234, minSampleMs: 50 },
    host: { cpuModel: 'Test CPU', cpuCount: 2, virtualization: 'pvm', virtualizationDetail: 'PVM', runsUnderHypervisor: true, kernel: 'Linux 6', node: 'v20', memoryGiB: 4, loadAverageAtStart: [0, 0, 0], runtimeVersions: {} },
    caveats: ['a caveat'],
    baseline: { runnerId: 'docker', note: 'ratios are relative to bare Docker' },
    baselines: { host: { runnerId: 'docker', note: 'ratios are relative to bare Docker' } },
    tests: [],
    runners: [runner('docker'), runner('runc'), runner('runsc', { syscall: 0.01 }), { ...runner('runc'), id: 'zone', name: 'zone', status: 'skipped', reason: 'zones are not implemented yet: test' }],
    metrics: [
      metric('cpu_int', 'cpu', 'integer ALU loop', 'ns/iter', 'lower', 1.02, 1.1),
      metric('sys_getppid', 'syscall', 'getppid()', 'ns/call', 'lower', 0.8, 150),
    ],
    headline: { cpu: { docker: 1, runc: 1.02, runsc: 1.1 }, syscall: { docker: 1, runc: 0.8, runsc: 150 } },
    executed: [],
  } as BenchResults;
}

t.test('markdown: one row per metric and runner, ratios and notes', async (t) => {
  const md = renderMarkdown(fixture());
  t.match(md, /\| integer ALU loop \(cpu\) \| ns\/iter \| docker \| 100 \[90\.0–110\] \| 1\.00× \| baseline \|/);
  t.match(md, /\|  \|  \| runsc \(gVisor: Debian's 2022 runsc build, platform ptrace only\) \| 15,000 \[13,500–16,500\] \| 150× \| 1% of the default iterations/);
  t.match(md, /\| runsc \(gVisor: [^|]*\) \| 1\.10× \| 150× \|/, 'headline table: geometric means per group');
  t.match(md, /## Read this first\n\n- a caveat/);
});

t.test('svg: a bar and a label per (metric, non-baseline runner), legend, axis; renders', async (t) => {
  const svg = renderSvg(fixture());
  t.equal((svg.match(/<rect [^>]*><title>/g) ?? []).length, 4, '2 metrics x 2 runners (the baseline is the axis line)');
  t.match(svg, />150×</);
  t.match(svg, />runsc \(gVisor: Debian's 2022 runsc build, platform ptrace only\)</);
  t.match(svg, /docker = 1/);
  t.match(svg, /log scale/);
  const rsvg = spawnSync('rsvg-convert', ['--format', 'png'], { input: svg });
  if (rsvg.error) t.pass('rsvg-convert renders it', { skip: 'rsvg-convert not installed (apt-get install librsvg2-bin)' });
  else {
    t.equal(rsvg.status, 0, `rsvg-convert accepts it: ${rsvg.stderr}`);
    t.equal(rsvg.stdout.subarray(1, 4).toString(), 'PNG', 'renders to a PNG');
  }
});

t.test('headline: zone@emulated-host against docker@emulated-host, with the virtualization mode', async (t) => {
  const base = fixture();
  const inside = (id: string, name: 'docker' | 'zone') => ({ id, name, location: 'emulated-host' as const, description: id, status: 'ok' as const, iterations: {}, iterationScale: {} });
  const results = {
    ...base,
    runners: [...base.runners.filter((r) => r.name !== 'zone'), inside('docker@emulated-host', 'docker'), inside('zone@emulated-host', 'zone')],
    baselines: { ...base.baselines, 'emulated-host': { runnerId: 'docker@emulated-host', note: 'ratios inside the emulated host are relative to bare Docker' } },
    headline: { cpu: { ...base.headline['cpu'], 'zone@emulated-host': 1.05 }, syscall: { ...base.headline['syscall'], 'zone@emulated-host': 0.97 } },
    emulatedHost: { host: { ...base.host, virtualization: 'hardware', virtualizationDetail: '/dev/kvm with hardware virtualization (svm)' }, scale: 0.02, bootMs: 7000, kernelRelease: '6.12.117' },
  } as BenchResults;
  const md = renderMarkdown(results);
  t.match(md, /\*\*zone@emulated-host vs docker@emulated-host\*\* \(zone\/Docker, >1 = the zone costs more\): CPU 1\.05×, syscalls 0\.97×\./);
  t.match(md, /\| CPU \| zone\/Docker ≤ 1\.01[^|]*\| 1\.05× \| no \| missed: 1\.04× over \|/, 'goal row: CPU missed, by how much');
  t.match(md, /\| Syscalls \| zone\/Docker ≤ 1\.00[^|]*\| 0\.97× \| yes \| met, 1\.03× under \|/, 'goal row: syscalls met');
  t.match(md, /\| Memory \| zone\/Docker ≤ 1\.00 \| – \| not measured \|/, 'goal row: memory not in this run');
  t.match(md, /Virtualization mode of these figures: \*\*nested: the zone's VM ran on the emulated host's \/dev\/kvm \(\/dev\/kvm with hardware virtualization \(svm\)\), itself under QEMU TCG on this pvm host/);
});
