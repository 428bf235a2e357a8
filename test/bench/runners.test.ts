// Each runner that can work here runs every test once with tiny iteration counts and returns sane
// figures; each that cannot is skipped visibly with its reason; none leaves anything behind.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { createHostRunner } from '../../src/bench/runners';
import { EmulatedHostRunner } from '../../src/bench/runners/emulated-host';
import { findQemu } from '../../src/host/emulated/qemu';
import { findKernel } from '../../src/kernel';
import type { BenchRunner } from '../../src/bench/runners/runner';
import { ZoneRunner } from '../../src/bench/runners/zone';
import { containerCgroupsUnavailableReason } from '../../src/bench/runners/cgroups';
import { detectVirtualization, readCpuInfo } from '../../src/bench/host-facts';
import { buildWorkload, iterationsFor, WORKLOAD_TESTS } from '../../src/bench/workload';
import { hostState } from './fixtures/host-state';

/** Loose bounds per unit: a figure outside them means a broken measurement, not a slow machine. */
const SANE: Record<string, [number, number]> = {
  'ns/iter': [0.05, 1_000],
  'MiB/s': [10, 100_000],
  'GiB/s': [0.1, 1_000],
  'ns/load': [0.5, 10_000],
  'ns/page': [10, 1_000_000],
  'ns/call': [10, 1_000_000],
  'ns/pair': [50, 5_000_000],
  'ns/round trip': [100, 50_000_000],
  'µs/fork': [5, 1_000_000],
};

const SCALE = 0.001; // every test runs the minimum the harness allows or close to it

t.test('every host runner, one tiny run of every test', async (t) => {
  const workloadPath = await buildWorkload();
  for (const name of ['bare', 'docker', 'runc', 'crun', 'runsc'] as const) {
    const runner = createHostRunner(name);
    const availability = await runner.probe();
    if (!availability.available) {
      t.pass(name, { skip: availability.reason });
      continue;
    }
    await t.test(name, async (t) => {
      const before = hostState();
      const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `bulkhead-bench-test-${name}-`));
      try {
        await runner.prepare({ workloadPath, workDir, log: (m) => t.comment(m) });
        const args = WORKLOAD_TESTS.map((w) => `${w.name}=${iterationsFor(w, SCALE, runner.iterationScale)}`);
        const results = await runner.run({ args, tests: WORKLOAD_TESTS.map((w) => w.name) }, { timeoutMs: 120_000 });
        t.equal(results.length, WORKLOAD_TESTS.length, 'one result per test');
        for (const [i, r] of results.entries()) {
          const test = WORKLOAD_TESTS[i]!;
          t.equal(r.test, test.name);
          t.equal(r.iterations, iterationsFor(test, SCALE, runner.iterationScale), `${test.name}: ran the iterations asked for`);
          const [lo, hi] = SANE[test.unit]!;
          t.ok(r.value >= lo && r.value <= hi, `${test.name}: ${r.value} ${test.unit} is within [${lo}, ${hi}]`);
          t.ok(r.elapsedNs > 0, `${test.name}: elapsed time recorded`);
        }
        const version = await runner.version();
        if (name === 'bare') t.equal(version, undefined, 'bare has no runtime version');
        else t.match(version, /\d+\.\d+/, `reports its version (${version})`);
      } finally {
        await runner.cleanup();
        fs.rmSync(workDir, { recursive: true, force: true });
      }
      t.same(hostState(), before, `${name}: host state unchanged after cleanup`);
    });
  }
});

t.test('unavailable runners say why', async (t) => {
  // Zones on this machine's own KVM need hardware virtualization (not PVM); without it, the reason.
  const zone = await new ZoneRunner('host').probe();
  const hardware = detectVirtualization(readCpuInfo().flags).mode === 'hardware';
  t.equal(zone.available, hardware, `zone on this host's KVM: available ${zone.available}, hardware virtualization ${hardware}`);
  if (!zone.available) t.match(zone.reason, /^zones cannot run on this host's KVM: /);
  const inEmulatedHost: BenchRunner = new EmulatedHostRunner('docker');
  const e = await inEmulatedHost.probe();
  t.equal(inEmulatedHost.id, 'docker@emulated-host');
  t.equal(inEmulatedHost.location, 'emulated-host');
  // Not the probe's own helper: what this machine has. With QEMU and a built host kernel (.ci/run builds it
  // before the tests) the runner must be available; without them it must say which is missing.
  const canBoot = findQemu() !== undefined && (await findKernel({ config: 'host' })) !== undefined;
  t.equal(e.available, canBoot, `available: ${e.available}, and this machine ${canBoot ? 'can' : 'cannot'} boot the emulated host`);
  if (!e.available) t.match(e.reason, /emulated-host kernel|emulated host|qemu/i);
  await t.rejects(new ZoneRunner('emulated-host').run({ args: [], tests: [] }, { timeoutMs: 1000 }), { code: 'BENCH_FAILED' }, 'run() before prepare()');
});

t.test('cgroup v2 without bpf(): runc, crun and docker are refused up front, with the reason', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-cgroups-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'cgroup.controllers'), 'cpu memory\n');
  const sysctl = path.join(dir, 'unprivileged_bpf_disabled');
  t.match(containerCgroupsUnavailableReason(dir, sysctl), /no bpf\(\) syscall/);
  fs.writeFileSync(sysctl, '2\n');
  t.equal(containerCgroupsUnavailableReason(dir, sysctl), undefined, 'with bpf(): fine');
  fs.rmSync(path.join(dir, 'cgroup.controllers'));
  fs.rmSync(sysctl);
  t.equal(containerCgroupsUnavailableReason(dir, sysctl), undefined, 'cgroup v1 or hybrid: the devices controller needs no BPF');
});
