// The KVM microbenchmarks on the shared harness: short interleaved rounds give positive per-operation
// figures with their range, and the script writes results.json, report.md and chart.svg into --out
// (skipped without /dev/kvm).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { renderMicroMarkdown, renderMicroSvg, runMicroBenchmarks } from '../../src/bench/micro/run';
import { InvalidConfigError } from '../../src/errors';
import { packageRoot } from '../../src/util/package-root';

const skip = fs.existsSync('/dev/kvm') ? false : '/dev/kvm does not exist on this host';

t.test('VM create/destroy and the exit round trip, in interleaved rounds', { skip }, async (t) => {
  const r = await runMicroBenchmarks({ timeMs: 100, rounds: 2, seed: 7 });
  t.same(r.results.map((x) => x.name), ['VM create + destroy (2 MiB, 1 vCPU)', 'port-I/O exit round trip to a JS handler']);
  t.same(r.settings, { rounds: 2, warmups: 1, timeMs: 100, seed: 7 }, 'the settings and the seed are recorded');
  for (const x of r.results) {
    t.equal(x.rounds.length, 2, `${x.name}: one figure per counted round`);
    t.ok(x.median > 0 && Number.isFinite(x.median), `${x.name}: median ${x.median} ${x.unit}`);
    t.ok(x.min <= x.median && x.median <= x.max, `${x.name}: ${x.min} <= ${x.median} <= ${x.max}`);
    t.ok(x.samples > 0, `${x.name}: ${x.samples} iterations`);
  }
  const md = renderMicroMarkdown(r);
  t.match(md, new RegExp(`Virtualization mode of every figure: \\*\\*${r.host.virtualization}\\*\\*`), 'the report names the virtualization mode');
  t.match(md, /seed 7/);
  const svg = renderMicroSvg(r);
  t.equal((svg.match(/<rect x=/g) ?? []).length, 4, 'one bar per figure and counted round');
});

t.test('bad settings are typed errors', async (t) => {
  await t.rejects(runMicroBenchmarks({ rounds: 0 }), InvalidConfigError);
  const err: unknown = await runMicroBenchmarks({ timeMs: 1.5 }).catch((e: unknown) => e);
  t.match(err, { field: 'timeMs', value: 1.5, allowed: 'an integer >= 1' }, 'it says which field and what is allowed');
});

t.test('the script writes the three outputs into --out', { skip }, async (t) => {
  const out = path.join(t.testdir(), 'out');
  const script = path.join(packageRoot(), 'dist', 'cjs', 'bench', 'micro', 'run.js');
  const r = spawnSync(process.execPath, [script, '--rounds', '1', '--time-ms', '50', '--out', out], { encoding: 'utf8', timeout: 120_000 });
  t.equal(r.status, 0, r.stderr);
  t.same(fs.readdirSync(out).sort(), ['chart.svg', 'report.md', 'results.json']);
  t.equal(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')).format, 'bulkhead-bench-micro/1');
  const bad = spawnSync(process.execPath, [script, '--rounds', 'many'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(bad.status, 1, 'a bad flag value fails');
  t.match(bad.stderr, /rounds.*non-negative integer/);
});
