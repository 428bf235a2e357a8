// The zone runner for real, at a small scale: a zone boots through Zone.create (in-process KVM on a
// hardware-virt host, else the emulated host, as on this machine's PVM), the workload binary is written
// into it with zone.files and exec()ed, and every test comes back parsed. A zone that does not start
// fails the test; only a machine without QEMU (and without hardware virtualization) is a skip.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { Zone } from '../../src';
import { detectVirtualization, readCpuInfo } from '../../src/bench/host-facts';
import { ZoneRunner } from '../../src/bench/runners/zone';
import { buildWorkload, iterationsFor, WORKLOAD_TESTS } from '../../src/bench/workload';
import { emulatedHostMissing, testKernel } from '../support/emulated-host';

t.setTimeout(30 * 60_000);

const SCALE = 0.001;

t.test('zone runner: one small run of every test inside a zone', async (t) => {
  // What the machine has, not the runner's own probe: hardware virtualization runs zones here, else QEMU must.
  const hardware = detectVirtualization(readCpuInfo().flags).mode === 'hardware';
  const missing = hardware ? undefined : emulatedHostMissing();
  if (missing) {
    t.pass('skipped', { skip: `no hardware virtualization, and ${missing}` });
    return;
  }
  const runner = new ZoneRunner(hardware ? 'host' : 'emulated-host');
  t.same(await runner.probe(), { available: true }, `${runner.id} is available on this machine`);
  const workloadPath = await buildWorkload();
  // Built before the zone asks for them: a cold build inside the emulated host's start would outlast its boot deadline.
  if (!hardware) await testKernel('host');
  await testKernel('zone');
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-test-zone-'));
  const logs: string[] = [];
  t.teardown(() => fs.rmSync(workDir, { recursive: true, force: true }));
  try {
    await runner.prepare({ workloadPath, workDir, log: (m) => logs.push(m) });
    t.match(await runner.version(), /^zone kernel \d+\.\d+/, 'reports the zone kernel it ran');
    const args = WORKLOAD_TESTS.map((w) => `${w.name}=${iterationsFor(w, SCALE, runner.iterationScale)}`);
    const results = await runner.run({ args, tests: WORKLOAD_TESTS.map((w) => w.name) }, { timeoutMs: 10 * 60_000 });
    t.equal(results.length, WORKLOAD_TESTS.length, 'one result per test');
    for (const [i, r] of results.entries()) {
      const test = WORKLOAD_TESTS[i]!;
      t.equal(r.test, test.name);
      t.equal(r.iterations, iterationsFor(test, SCALE, runner.iterationScale), `${test.name}: ran the iterations asked for`);
      t.ok(Number.isFinite(r.value) && r.value > 0, `${test.name}: ${r.value} ${test.unit}`);
      t.ok(r.elapsedNs > 0, `${test.name}: elapsed time recorded`);
    }
    // A bad argument is the workload's own error, surfaced typed, and the zone stays usable.
    await t.rejects(runner.run({ args: ['no_such_test=1'], tests: ['no_such_test'] }, { timeoutMs: 60_000 }), { code: 'BENCH_FAILED' });
  } catch (err) {
    t.comment(logs.slice(-20).join('\n'));
    throw err;
  } finally {
    await runner.cleanup();
  }
  const left = (await Zone.list()).filter((z) => z.labels['bulkhead.bench'] === String(process.pid));
  t.same(left, [], 'cleanup() destroyed the zone');
  await t.rejects(runner.run({ args: [], tests: [] }, { timeoutMs: 1000 }), { code: 'BENCH_FAILED' }, 'used after cleanup: a typed error');
});
