// bulkhead/xen inside the Xen test host's dom0 (the run's one boot): every library loads, and the
// host information agrees with `xl info` and `xl list`.
import t from 'tap';
import { inDom0, xenHost } from '../support/xen-host';

t.setTimeout(15 * 60_000);

t.test('in dom0 all of Xen\'s libraries load and host info matches xl', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const libs = await inDom0<{ name: string; loaded: boolean; error?: string }[]>(host, 'return xen.xenLibraries();');
  for (const l of libs) t.ok(l.loaded, `${l.name} loaded${l.error ? `: ${l.error}` : ''}`);

  const info = await inDom0<{
    version: string;
    cpus: number;
    totalMemoryMiB: number;
    freeMemoryMiB: number;
    domains: { domid: number; state: string; memoryMiB: number; onlineVcpus: number; uuid: string }[];
  }>(host, 'return xen.xenHostInfo();');
  const xl = (await host.session.run(['xl', 'info'])).stdout;
  const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(xl)?.[1]?.trim();
  t.equal(info.version, field('xen_version'), `version ${info.version}`);
  t.equal(info.cpus, Number(field('nr_cpus')), 'cpus');
  t.ok(Math.abs(info.totalMemoryMiB - Number(field('total_memory'))) <= 1, `total memory ${info.totalMemoryMiB} MiB`);
  t.ok(Math.abs(info.freeMemoryMiB - Number(field('free_memory'))) <= 16, `free memory ${info.freeMemoryMiB} MiB (xl: ${field('free_memory')})`);
  const dom0 = info.domains.find((d) => d.domid === 0);
  t.ok(dom0, 'domain 0 is listed');
  t.match(dom0?.state, /^(running|blocked)$/, `dom0 is ${dom0?.state}`);
  t.ok(dom0 && dom0.memoryMiB > 1000 && dom0.memoryMiB <= 1536, `dom0 has ${dom0?.memoryMiB} MiB`);
  t.equal(dom0?.onlineVcpus, 1);
  t.match(dom0?.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const xlList = (await host.session.run(['xl', 'list'])).stdout.trim().split('\n').slice(1);
  t.equal(info.domains.length, xlList.length, `${info.domains.length} domain(s), as xl list shows`);
});

t.test('bulkhead doctor reports Xen in dom0', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await host.session.bulkhead(['doctor', '--json']);
  const report = JSON.parse(r.stdout) as {
    xen: { ok: boolean; dom0: boolean; meaning: string; hypervisor?: { version: string; freeMemoryMiB: number }; libraries?: { loaded: boolean }[] };
  };
  t.equal(report.xen.ok, true, report.xen.meaning);
  t.equal(report.xen.dom0, true);
  t.match(report.xen.hypervisor?.version, /^4\.17\./);
  t.ok((report.xen.hypervisor?.freeMemoryMiB ?? 0) > 1000, 'free memory reported');
  t.equal(report.xen.libraries?.filter((l) => l.loaded).length, 7, 'all seven libraries load');
  const text = await host.session.bulkhead(['doctor']);
  t.match(text.stdout, /Xen 4\.17\.\d+, \d+ MiB free/, 'the human report says so too');
});
