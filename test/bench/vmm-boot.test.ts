// The boot benchmark on a real single boot of each VMM inside the emulated host: the marker is
// found, the timing and the memory-overhead figures come out of /proc as the report explains, and
// nothing is left behind. Skips visibly where QEMU or the kernels are missing. No timing is asserted.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { withEmulatedHost } from '../../src/bench/method/emulated-host';
import type { BootConfig, BootSample } from '../../src/bench/vmm/boot';
import { buildNativeTools, cachedKernel, runInner, writeInitramfs } from '../../src/bench/vmm/emulated';
import { findQemu } from '../../src/host/emulated/qemu';
import { renderMarkdown, summarizeBoot } from '../../src/bench/vmm/report';

t.setTimeout(20 * 60_000);

t.test('one boot of each VMM inside the emulated host: marker time and memory overhead', async (t) => {
  const qemu = findQemu();
  if (!qemu) return void t.skip('qemu-system-x86_64 not installed (apt-get install qemu-system-x86)', async () => undefined);
  // Any cached build serves (the benchmark does the same while a config change awaits a rebuild).
  const hostKernel = (await cachedKernel('host'))?.kernel;
  const zoneKernel = (await cachedKernel('zone'))?.kernel;
  if (!hostKernel || !zoneKernel) return void t.skip('host/zone kernels not built (npm run kernels)', async () => undefined);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-boot-test-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const tools = buildNativeTools(work);
  const initrd = path.join(work, 'initramfs.cpio');
  writeInitramfs(initrd, tools.init);

  const config: BootConfig = {
    bhBoot: tools.bhBoot,
    qemu,
    kernel: zoneKernel.vmlinux,
    initrd,
    cmdline: 'console=ttyS0 reboot=t panic=-1',
    marker: 'BH-INIT',
    memoryMiB: 256,
    runs: 1,
    warmups: 0,
    seed: 1,
    timeoutMs: 120_000,
  };
  // The benchmark's own way into the emulated host (it stops the host when done).
  const { samples } = await withEmulatedHost({ log: (m) => t.comment(m), kernel: hostKernel.vmlinux }, (host) =>
    runInner<{ samples: BootSample[]; qemuVersion: string }>(host, 'boot', config, 10 * 60_000),
  );
  t.same(samples.map((s) => s.vmm).sort(), ['ours', 'qemu'], 'one boot of each');
  for (const s of samples) {
    t.ok(s.markerMs > 0 && Number.isFinite(s.markerMs), `${s.vmm}: marker after ${s.markerMs.toFixed(0)} ms`);
    const m = s.memory;
    t.ok(m.guestMappings.length === 1, `${s.vmm}: guest RAM mapping ${m.guestMappings[0]}`);
    t.ok(m.guestKb > 1024 && m.guestKb <= 256 * 1024, `${s.vmm}: guest touched ${(m.guestKb / 1024).toFixed(1)} MiB (a booted kernel, at most -m)`);
    t.equal(m.overheadKb, m.rssKb - m.guestKb, `${s.vmm}: overhead = RSS - guest`);
    t.ok(m.overheadKb > 0, `${s.vmm}: overhead ${(m.overheadKb / 1024).toFixed(2)} MiB`);
    t.ok(s.guestUptimeMs === undefined || (s.guestUptimeMs > 0 && s.guestUptimeMs < s.markerMs), `${s.vmm}: guest uptime at the marker ${s.guestUptimeMs} ms`);
    t.ok(Math.abs(m.vmRssKb - m.rssKb) <= 1024, `${s.vmm}: smaps total (${m.rssKb} kB) agrees with VmRSS (${m.vmRssKb} kB)`);
  }
  const ours = samples.find((s) => s.vmm === 'ours')!;
  t.ok(ours.selfReportedMs !== undefined, "bh-boot's own marker line was read");
  t.ok(ours.memory.imageCopiesKb > 0, `bh-boot's kernel/initrd buffers found (${(ours.memory.imageCopiesKb / 1024).toFixed(1)} MiB)`);

  const summary = summarizeBoot(samples);
  t.equal(summary.markerMs.ours.n, 1);
  const md = renderMarkdown({
    format: 'bulkhead-bench-vmm/1',
    startedAt: '', finishedAt: '',
    host: { cpuModel: 'x', cpuCount: 2, virtualization: 'pvm', virtualizationDetail: 'pvm', runsUnderHypervisor: true, kernel: 'k', node: 'v20', memoryGiB: 1, loadAverageAtStart: [0], runtimeVersions: {} },
    exits: [],
    boot: { result: { location: 'emulated-host', virtualization: 'hardware', config, qemuVersion: 'QEMU', samples, ...summary } },
    goals: [],
    caveats: [],
  });
  t.match(md, /spawn → marker line, ms \| \d+ \[/, 'the report renders the boot row');
});
