// The lifecycle figures: a small real run (zones against Docker and runc, in the emulated host on a
// machine whose /dev/kvm is PVM) writes report.md, chart.svg and results.json into --out, with every
// goal row present and the virtualization mode stated; the zone must start. Bad settings are typed errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { detectVirtualization, readCpuInfo } from '../../src/bench/host-facts';
import { evaluateGoals } from '../../src/bench/lifecycle/goals';
import { writeLifecycleReport } from '../../src/bench/lifecycle/report';
import { runLifecycle } from '../../src/bench/lifecycle/run';
import { pipeInsideRate } from '../../src/bench/lifecycle/sandbox';
import { processesMentioning } from '../../src/util/process';
import { emulatedHostMissing, testKernel } from '../support/emulated-host';

t.setTimeout(40 * 60_000);

const GOALS = ['CPU', 'Memory', 'Syscalls', 'create → first output', 'exec round trip', 'Stream throughput', 'Memory per idle zone'];

t.test('goal rows: all seven, even with nothing measured', async (t) => {
  const rows = evaluateGoals([], undefined);
  t.same(rows.map((r) => r.goal), GOALS);
  for (const r of rows) t.equal(r.met, null, `${r.goal}: not measured`);
  const met = evaluateGoals(
    [{ id: 'exec_true', title: 'exec', unit: 'ms', better: 'lower', bySandbox: { zone: { median: 30, min: 30, max: 30, n: 1, samples: [30] }, docker: { median: 100, min: 100, max: 100, n: 1, samples: [100] } } }],
    { hostRssMiB: 10, guestTouchedMiB: 9 },
  );
  const exec = met.find((r) => r.goal === 'exec round trip')!;
  t.equal(exec.measured, 0.3);
  t.equal(exec.met, true, '0.3x <= 0.5x');
  t.match(exec.by, /under/);
  const idle = met.find((r) => r.goal === 'Memory per idle zone')!;
  t.equal(idle.met, true, '10 MiB <= 9 + 3 MiB');
});

t.test('a missed stream goal is set next to the pipe inside each sandbox', async (t) => {
  const fig = (id: string, zone: number, docker: number) => ({
    id, title: id, unit: 'MiB/s', better: 'higher' as const,
    bySandbox: { zone: { median: zone, min: zone, max: zone, n: 1, samples: [zone] }, docker: { median: docker, min: docker, max: docker, n: 1, samples: [docker] } },
  });
  const rows = evaluateGoals([fig('stream_cat', 3, 6), fig('pipe_inside', 6, 24)], undefined);
  const stream = rows.find((r) => r.goal === 'Stream throughput')!;
  t.equal(stream.met, false, '3 MiB/s against 6 misses ≥ 1.0×');
  t.match(stream.note, /zone 6\.00 MiB\/s, docker 24\.00 MiB\/s \(4\.00× the zone\); the zone's stream reaches 50 % of its own pipe/);
  const met = evaluateGoals([fig('stream_cat', 6, 6), fig('pipe_inside', 6, 24)], undefined).find((r) => r.goal === 'Stream throughput')!;
  t.equal(met.note, undefined, 'a met goal has no note');
});

t.test("busybox time's report is parsed, anything else is a clear error", async (t) => {
  t.equal(pipeInsideRate(8 * 1024 * 1024, 'real\t0m 2.00s\nuser\t0m 1.00s\nsys\t0m 0.50s\n', 'the zone'), 4);
  t.equal(pipeInsideRate(60 * 1024 * 1024, 'real\t1m 0.00s\n', 'the zone'), 1);
  t.throws(() => pipeInsideRate(1024, 'real\t0m 0.00s\n', 'the zone'), { code: 'BENCH_FAILED', message: /no usable time/ });
  t.throws(() => pipeInsideRate(1024, 'sh: time: not found', 'the container'), { code: 'BENCH_FAILED', message: /inside the container/ });
});

t.test('bad settings are typed errors, before anything starts', async (t) => {
  await t.rejects(runLifecycle({ rounds: 0 }), { code: 'INVALID_CONFIG' });
  await t.rejects(runLifecycle({ densities: [0] }), { code: 'INVALID_CONFIG' });
  await t.rejects(runLifecycle({ streamBytes: -1 }), { code: 'INVALID_CONFIG' });
});

t.test('a small real lifecycle run writes all three outputs, every goal row present', async (t) => {
  const hardware = detectVirtualization(readCpuInfo().flags).mode === 'hardware';
  const missing = hardware ? undefined : emulatedHostMissing();
  if (missing) {
    t.pass('skipped', { skip: `no hardware virtualization, and ${missing}` });
    return;
  }
  if (!hardware) await testKernel('host');
  await testKernel('zone');
  // A private temp dir, so anything the run leaves behind (dirs, processes naming it) is visible.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-lifecycle-test-'));
  const savedTmp = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  t.teardown(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  const logs: string[] = [];
  const results = await runLifecycle({ rounds: 1, warmups: 0, streamBytes: 4 * 1024 * 1024, densities: [1, 2], seed: 11, log: (m) => logs.push(m) });
  const zone = results.sandboxes.find((s) => s.kind === 'zone');
  t.equal(zone?.status, 'ok', `the zone started and answered: ${zone?.reason ?? ''}\n${logs.slice(-15).join('\n')}`);
  for (const s of results.sandboxes) t.comment(`${s.kind}: ${s.status}${s.reason ? `: ${s.reason}` : ''}`);
  t.equal(results.virtualization.where, hardware ? 'host' : 'emulated-host', `measured ${results.virtualization.where}: ${results.virtualization.mode}`);
  t.equal(results.settings.seed, 11, 'the seed is recorded');
  t.same(results.goals.map((g) => g.goal), GOALS, 'every goal row');
  const start = results.figures.find((f) => f.id === 'start_echo');
  t.ok(start?.bySandbox.zone && start.bySandbox.zone.median > 0, 'the zone has a start-up figure');
  t.ok(results.figures.find((f) => f.id === 'density_2_time')?.bySandbox.zone, 'the zone has a density-2 figure');
  const pipe = results.figures.find((f) => f.id === 'pipe_inside');
  t.ok(pipe?.bySandbox.zone && pipe.bySandbox.zone.median > 0, 'the pipe inside is measured in the zone');
  if (results.sandboxes.find((s) => s.kind === 'docker')?.status === 'ok') t.ok(pipe?.bySandbox.docker && pipe.bySandbox.docker.median > 0, 'and in docker');
  t.ok(Object.keys(results.startSplit).length >= 2, `the zone's start is split: ${JSON.stringify(results.startSplit)}`);

  const out = path.join(tmp, 'out');
  const written = writeLifecycleReport(results, out);
  t.same(fs.readdirSync(out).sort(), ['chart.svg', 'report.md', 'results.json']);
  t.same(JSON.parse(fs.readFileSync(written.resultsJson, 'utf8')), JSON.parse(JSON.stringify(results)), 'results.json holds the results');
  const md = fs.readFileSync(written.reportMd, 'utf8');
  for (const g of GOALS) t.match(md, new RegExp(`\\n\\| ${g.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\| `), `report.md has the goal row "${g}"`);
  t.match(md, new RegExp(`Virtualization mode of every figure below: \\*\\*${results.virtualization.mode}\\*\\*`));
  t.match(md, /## Goals \(/);
  t.ok(fs.readFileSync(written.chartSvg, 'utf8').startsWith('<svg'), 'chart.svg is an SVG');
  t.same(fs.readdirSync(tmp), ['out'], 'no temp dirs left, only the output');
  t.same(processesMentioning(tmp), [], 'no process of the run is left');
});
