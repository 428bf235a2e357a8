// The devices benchmark (C) at tiny sizes inside the emulated host: each VMM reads its disk, moves vsock data
// both ways and boots with every device, the figures come out as the report explains, and the report's section
// and goals render. No timing is asserted (benchmarks compare, tests check that the measuring works).
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import type { DevicesConfig, DevicesInnerResult } from '../../src/bench/vmm/devices';
import { buildNativeTools, cachedKernel, writeInitramfs } from '../../src/bench/vmm/emulated';
import { packageRoot } from '../../src/util/package-root';
import { findQemu } from '../../src/host/emulated/qemu';
import { renderVmmSvg } from '../../src/bench/vmm/chart';
import { goalsFor, renderMarkdown, summarizeDevices, type VmmBenchResults } from '../../src/bench/vmm/report';
import { collectHostFacts } from '../../src/bench/host-facts';
import { emulatedHost } from '../support/emulated-host';

t.setTimeout(30 * 60_000);

t.test('a tiny devices benchmark inside the emulated host', async (t) => {
  const host = await emulatedHost(t);
  if (!host) return;
  const qemu = findQemu();
  if (!qemu) return void t.skip('qemu-system-x86_64 not installed (apt-get install qemu-system-x86)', async () => undefined);
  const zone = (await cachedKernel('zone'))?.kernel;
  if (!zone) return void t.fail('the zone kernel is not built (npm run kernels)');
  const script = path.join(packageRoot(), 'dist', 'cjs', 'bench', 'vmm', 'run.js');
  if (!fs.existsSync(script)) return void t.fail(`${script} does not exist: run npm run build first`);

  const work = host.workdir(t);
  const tools = buildNativeTools(work);
  const initrd = path.join(work, 'devices-initramfs.cpio');
  writeInitramfs(initrd, tools.devicesInit);
  const config: DevicesConfig = {
    bhBoot: tools.bhBoot, qemu, peer: tools.vsockPeer, kernel: zone.vmlinux, initrd,
    workDir: `/tmp/bulkhead-devices-bench-test-${process.pid}`,
    diskMiB: 8, vsockMiB: 2, memoryMiB: 256, runs: 1, warmups: 0, seed: 1, timeoutMs: 180_000,
  };
  const r = await host.run([process.execPath, script, '--inner', 'devices', '--payload', JSON.stringify(config)], { timeoutMs: 25 * 60_000 });
  t.equal(r.exitCode, 0, 'the inner run finished', { stderr: r.stderr.slice(-3000) });
  const inner = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as DevicesInnerResult;

  for (const vmm of ['ours', 'qemu'] as const) {
    for (const [kind, bytes] of [['blk', 8 << 20], ['vsock-out', 2 << 20], ['vsock-in', 2 << 20]] as const) {
      const s = inner.throughput?.filter((x) => x.vmm === vmm && x.kind === kind) ?? [];
      t.equal(s.length, 1, `${vmm} ${kind}: one sample`);
      t.equal(s[0]?.bytes, bytes, `${vmm} ${kind}: all ${bytes >> 20} MiB arrived`);
      t.ok((s[0]?.mibPerS ?? 0) > 0 && Number.isFinite(s[0]?.mibPerS), `${vmm} ${kind}: ${s[0]?.mibPerS.toFixed(1)} MiB/s`);
    }
    const b = inner.boot?.filter((x) => x.vmm === vmm) ?? [];
    t.equal(b.length, 1, `${vmm}: one boot with every device`);
    t.ok((b[0]?.markerMs ?? 0) > 0, `${vmm}: marker after ${b[0]?.markerMs.toFixed(0)} ms`);
    t.ok((b[0]?.memory.overheadKb ?? 0) > 0, `${vmm}: overhead ${((b[0]?.memory.overheadKb ?? 0) / 1024).toFixed(2)} MiB`);
  }

  const facts = collectHostFacts();
  const results: VmmBenchResults = {
    format: 'bulkhead-bench-vmm/1', startedAt: '', finishedAt: '', host: facts, exits: [], boot: {},
    devices: {
      result: {
        location: 'emulated-host', virtualization: 'hardware (nested, SVM emulated by TCG)', config, qemuVersion: inner.qemuVersion ?? '',
        throughput: inner.throughput, boot: inner.boot, ...summarizeDevices(inner.throughput, inner.boot),
      },
    },
    goals: [], caveats: [],
  };
  results.goals = goalsFor(results);
  t.same(results.goals.map((g) => g.target), ['≥ 1.0x QEMU', '≥ 0.8x QEMU vhost-vsock', '≥ 0.8x QEMU vhost-vsock', '≤ 0.8x QEMU', '≤ 3 MiB'], 'the five device goals');
  const md = renderMarkdown(results);
  t.match(md, /## C\. Virtio devices/);
  t.match(md, /virtio-blk sequential read of 8 MiB/);
  const svg = renderVmmSvg(results);
  t.equal((svg.match(/<rect x=/g) ?? []).length, 4, 'chart.svg: a bar for blk, both vsock directions and the boot');
  t.match(svg, /vsock guest → host \(vs vhost-vsock\) \(emulated host, all devices\)/);
});
