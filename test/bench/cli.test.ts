// The CLI: arguments are checked before anything runs, and a complete run writes its three files,
// prints results.json with --json, and leaves the host as it found it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { parseBenchArgs } from '../../src/cli/bench';
import { processesMentioning } from '../../src/util/process';
import { hostState } from './fixtures/host-state';

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'cli', 'main.js');

t.test('arguments', async (t) => {
  const a = parseBenchArgs(['--only', 'cpu,syscall', '--runners', 'bare,runsc', '--runs', '7', '--scale', '0.5', '--json', '--out', 'x']);
  t.not(a, 'help');
  if (a === 'help') return;
  t.same(a.groups, ['cpu', 'syscall']);
  t.same(a.runners, ['bare', 'runsc']);
  t.equal(a.runs, 7);
  t.equal(a.scale, 0.5);
  t.equal(a.json, true);
  t.equal(a.out, 'x');
  const d = parseBenchArgs([]);
  t.ok(d !== 'help' && d.runs === 5 && d.runners.length === 6, 'defaults: 5 runs, every runner');
  t.ok(d !== 'help' && path.dirname(d.out) === os.tmpdir() && /^bulkhead-bench-\d{4}-/.test(path.basename(d.out)), `default output outside the source tree: ${d !== 'help' && d.out}`);
  t.equal(parseBenchArgs(['--help']), 'help');
  t.throws(() => parseBenchArgs(['--only', 'disk']), { code: 'INVALID_CONFIG', message: /--only.*"disk".*cpu, memory, syscall/ });
  t.throws(() => parseBenchArgs(['--runners', 'lxc']), { code: 'INVALID_CONFIG' });
  t.throws(() => parseBenchArgs(['--runs', '0']), { code: 'INVALID_CONFIG' });
  t.throws(() => parseBenchArgs(['--scale', 'fast']), { code: 'INVALID_CONFIG' });
  t.throws(() => parseBenchArgs(['--out']), { code: 'INVALID_CONFIG' });
  t.throws(() => parseBenchArgs(['--frobnicate']), { code: 'INVALID_CONFIG' });
});

t.test('a complete run: three files, JSON on stdout, progress on stderr, nothing left behind', async (t) => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build:ts first`);
  const before = hostState();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-cli-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const out = path.join(tmp, 'out');
  const r = spawnSync(process.execPath, [CLI, 'bench', '--runners', 'bare,docker,runc,zone', '--where', 'host', '--runs', '1', '--warmups', '0', '--scale', '0.001', '--json', '--out', out], {
    env: { ...process.env, TMPDIR: tmp },
    encoding: 'utf8',
    timeout: 180_000,
  });
  t.equal(r.status, 0, `exits 0: ${r.stderr.slice(-400)}`);
  t.match(r.stderr, /\[\d+\/\d+\] bare: run 1\/1 \.\.\./, 'progress on stderr (the order inside a round is shuffled)');
  const printed = JSON.parse(r.stdout);
  t.same(fs.readdirSync(out).sort(), ['chart.svg', 'report.md', 'results.json']);
  t.same(JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8')), printed, '--json prints what results.json holds');
  // --where host: zones only on this machine's own KVM, which needs hardware virtualization.
  if (printed.host.virtualization !== 'hardware') {
    t.equal(printed.runners.find((x: { name: string }) => x.name === 'zone')?.status, 'skipped');
    t.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /\| zone \| skipped \| zones cannot run on this host's KVM: /);
  } else t.equal(printed.runners.find((x: { name: string }) => x.name === 'zone')?.status, 'ok');
  t.same(fs.readdirSync(tmp), ['out'], 'no temp dirs left, only the output');
  t.same(processesMentioning(tmp), [], 'no process of the run is left');
  t.same(hostState(), before, 'host state as before');
});
