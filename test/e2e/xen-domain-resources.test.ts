// Memory and vCPUs of a running domain (setDomainMemory / setDomainVcpus, what `xl mem-set` and
// `xl vcpu-set` do) on a PV domU built by our code, in the Xen test host. The guest (xen zone kernel,
// busybox init) prints its online CPUs and MemTotal every second, so vCPU changes are checked in the
// guest: the xen flavour has CONFIG_HOTPLUG_CPU, whose xenbus watcher acts on cpu/I/availability
// ("offline" takes the CPU down and makes it not present; "online" makes it present again, and
// userspace onlines it, as udev's rule does on a distribution: the init here plays that part).
// A memory target is checked on both sides: Xen's limit and memory/target, then the guest's balloon
// driver (CONFIG_XEN_BALLOON) giving pages back (MemTotal and the pages Xen counts for the domain
// fall) and taking them again. Bad input gives typed errors and changes nothing.
import t from 'tap';
import * as path from 'node:path';
import { writeBusyboxInitramfs } from '../support/busybox-initramfs';
import { testKernel } from '../support/emulated-host';
import { inDom0, xenHost } from '../support/xen-host';

t.setTimeout(20 * 60_000);

const B = '/bin/busybox';
const REPORTER = [
  `${B} mkdir -p /sys /proc`,
  `${B} mount -t sysfs sysfs /sys`,
  `${B} mount -t proc proc /proc`,
  'i=0',
  'while [ $i -lt 900 ]; do',
  // udev's job: a CPU that became present (its device registered) and is offline is brought online.
  '  for c in /sys/devices/system/cpu/cpu[0-9]*; do',
  `    if [ -f $c/online ] && [ "$(${B} cat $c/online)" = 0 ]; then echo 1 > $c/online; fi`,
  '  done',
  `  echo "bulkhead-res cpus=$(${B} cat /sys/devices/system/cpu/online) present=$(${B} cat /sys/devices/system/cpu/present) $(${B} grep MemTotal /proc/meminfo | ${B} tr -s ' ')"`,
  `  ${B} sleep 1`,
  '  i=$((i+1))',
  'done',
  `${B} poweroff -f`,
  '',
].join('\n');

t.test('vCPUs go offline and online in the guest; a memory target reaches Xen, XenStore and the guest\'s balloon', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const initrd = writeBusyboxInitramfs(path.join(host.workdir(t), 'initramfs.cpio'), REPORTER);
  const cfg = { kernel: kernel.vmlinux, initrd, cmdline: 'console=hvc0 quiet rdinit=/init', memoryMiB: 128, vcpus: 2 };
  type Step = { cpus: string; present: string; online: number; availability: string[] };
  const r = await inDom0<{
    boot: Step; off: Step; on: Step;
    mem: { before: number; lowered: number; target: string; raised: number; targetAfter: string };
    guest: { before: number; lowered: number; raised: number; heldBefore: number; heldLowered: number };
    left: boolean;
  }>(
    host,
    `const cfg = ${JSON.stringify(cfg)};
     const d = await xen.createPvDomainAsync({ ...cfg, name: 'bulkhead-res-' + process.pid });
     const xs = xen.XenStore.open();
     const home = '/local/domain/' + d.domid;
     let text = '';
     d.console.on('data', (c) => { text += c.toString('latin1'); });
     const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
     // The guest's latest report after text offset \`from\`, once its 'cpus=… present=…' matches \`re\`.
     const report = async (from, re, what, ms = 120000, memOk = () => true) => {
       const t0 = Date.now();
       for (;;) {
         const lines = [...text.slice(from).matchAll(/bulkhead-res cpus=(\\S+) present=(\\S+) MemTotal: (\\d+) kB/g)];
         const last = lines[lines.length - 1];
         if (last && re.test('cpus=' + last[1] + ' present=' + last[2]) && memOk(Number(last[3]))) return { cpus: last[1], present: last[2], memKiB: Number(last[3]) };
         if (Date.now() - t0 > ms) throw new Error(what + ': no report matching ' + re + ' in ' + ms + ' ms; console: ' + text.slice(-1500));
         await sleep(200);
       }
     };
     const online = async (n) => { for (let i = 0; i < 100 && xen.domainInfo(d.domid).onlineVcpus !== n; i++) await sleep(200); return xen.domainInfo(d.domid).onlineVcpus; };
     const avail = () => [0, 1].map((i) => xs.read(home + '/cpu/' + i + '/availability'));
     try {
       d.unpause();
       const b = await report(0, /^cpus=0-1 present=0-1$/, 'boot', 240000);
       const boot = { cpus: b.cpus, present: b.present, online: await online(2), availability: avail() };
       let at = text.length;
       await d.setVcpus(1);
       const o = await report(at, /^cpus=0 present=0$/, 'offline');
       const off = { cpus: o.cpus, present: o.present, online: await online(1), availability: avail() };
       at = text.length;
       await xen.setDomainVcpus(d.domid, 2);
       const n = await report(at, /^cpus=0-1 present=0-1$/, 'online');
       const on = { cpus: n.cpus, present: n.present, online: await online(2), availability: avail() };
       const before = xen.domainInfo(d.domid).maxMemoryKiB;
       const guestBefore = n.memKiB;
       const heldBefore = xen.domainInfo(d.domid).memoryKiB;
       await d.setMemory(96);
       const lowered = xen.domainInfo(d.domid).maxMemoryKiB;
       const target = xs.read(home + '/memory/target');
       // The balloon driver gives back the ~32 MiB over the target, in steps (one report a second).
       at = text.length;
       const l = await report(at, /./, 'balloon down', 120000, (kib) => kib <= guestBefore - 28 * 1024);
       await sleep(3000); // settled: the driver stops at the target
       const heldLowered = xen.domainInfo(d.domid).memoryKiB;
       await xen.setDomainMemory(d.domid, 128);
       const raised = xen.domainInfo(d.domid).maxMemoryKiB;
       const targetAfter = xs.read(home + '/memory/target');
       at = text.length;
       const u = await report(at, /./, 'balloon up', 120000, (kib) => kib >= guestBefore - 1024);
       return { boot, off, on, mem: { before, lowered, target, raised, targetAfter }, guest: { before: guestBefore, lowered: l.memKiB, raised: u.memKiB, heldBefore, heldLowered }, left: false };
     } finally {
       d.destroy();
       xs.close();
     }`,
  );
  t.same(r.boot, { cpus: '0-1', present: '0-1', online: 2, availability: ['online', 'online'] }, 'booted with both vCPUs online');
  t.same(r.off, { cpus: '0', present: '0', online: 1, availability: ['online', 'offline'] }, 'setVcpus(1): cpu1 offline in XenStore, offline and not present in the guest, down in Xen');
  t.same(r.on, { cpus: '0-1', present: '0-1', online: 2, availability: ['online', 'online'] }, 'setDomainVcpus(2): cpu1 present again in the guest, onlined there, up in Xen');
  t.equal(r.mem.before, 128 * 1024 + 1024, "built with Xen's limit at 128 MiB + 1 MiB slack");
  t.equal(r.mem.lowered, 96 * 1024 + 1024, "setMemory(96): Xen's limit is 96 MiB + 1 MiB slack");
  t.equal(r.mem.target, String(96 * 1024), 'memory/target is 98304 KiB');
  t.equal(r.mem.raised, 128 * 1024 + 1024, 'setDomainMemory(128): the limit is raised again');
  t.equal(r.mem.targetAfter, String(128 * 1024), 'and the target with it');
  const g = r.guest;
  t.ok(g.lowered <= g.before - 28 * 1024, `the guest ballooned down: MemTotal ${g.before} → ${g.lowered} kB for a 96 MiB target`);
  t.ok(g.heldLowered <= g.heldBefore - 28 * 1024 && g.heldLowered <= 98 * 1024, `Xen counts ${g.heldBefore} → ${g.heldLowered} KiB held by the domain`);
  t.ok(g.raised >= g.before - 1024, `and back up at a 128 MiB target: MemTotal ${g.raised} kB`);
});

t.test('setDomainMemory / setDomainVcpus: typed errors for each bad input, and nothing changes', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const initrd = writeBusyboxInitramfs(path.join(host.workdir(t), 'initramfs.cpio'), `${B} sleep 1000\n`);
  const cfg = { kernel: kernel.vmlinux, initrd, cmdline: 'console=hvc0 quiet', memoryMiB: 64, vcpus: 2 };
  type E = { name: string; code: string; field?: string; message: string };
  const r = await inDom0<{ errors: Record<string, E>; unchanged: boolean; keysUnchanged: boolean; free: number }>(
    host,
    `const cfg = ${JSON.stringify(cfg)};
     const d = xen.createPvDomain({ ...cfg, name: 'bulkhead-res-bad-' + process.pid });
     const xs = xen.XenStore.open();
     const home = '/local/domain/' + d.domid;
     const catchIt = async (f) => { try { await f(); return { name: 'none', code: 'none', message: 'no error' }; } catch (e) { return { name: e.name, code: e.code, field: e.field, message: e.message }; } };
     const keys = () => JSON.stringify([xs.read(home + '/memory/target'), xs.read(home + '/cpu/0/availability'), xs.read(home + '/cpu/1/availability')]);
     try {
       const info0 = xen.domainInfo(d.domid), keys0 = keys();
       const errors = {
         memStaticMax: await catchIt(() => d.setMemory(65)),
         memZero: await catchIt(() => d.setMemory(0)),
         memSmall: await catchIt(() => d.setMemory(8)),
         memFraction: await catchIt(() => d.setMemory(32.5)),
         memString: await catchIt(() => xen.setDomainMemory(d.domid, '32')),
         memDom0: await catchIt(() => xen.setDomainMemory(0, 512)),
         memBadDomid: await catchIt(() => xen.setDomainMemory(-1, 32)),
         memNoDomain: await catchIt(() => xen.setDomainMemory(4321, 32)),
         vcpusOver: await catchIt(() => d.setVcpus(3)),
         vcpusZero: await catchIt(() => d.setVcpus(0)),
         vcpusFraction: await catchIt(() => d.setVcpus(1.5)),
         vcpusDom0: await catchIt(() => xen.setDomainVcpus(0, 1)),
         vcpusBadDomid: await catchIt(() => xen.setDomainVcpus(70000, 1)),
         vcpusNoDomain: await catchIt(() => xen.setDomainVcpus(4321, 1)),
       };
       const i1 = xen.domainInfo(d.domid);
       const unchanged = i1.maxMemoryKiB === info0.maxMemoryKiB && i1.maxVcpus === 2;
       const keysUnchanged = keys() === keys0;
       // Without static-max (a domain another toolstack made), the bound is what it holds plus Xen's free memory.
       xs.rm(home + '/memory/static-max');
       const free = xen.xenHostInfo().freeMemoryMiB;
       errors.memOverFree = await catchIt(() => d.setMemory(free + cfg.memoryMiB + 64));
       const destroyed = xen.createPvDomain({ ...cfg, name: 'bulkhead-res-gone-' + process.pid });
       destroyed.destroy();
       errors.memDestroyed = await catchIt(() => destroyed.setMemory(32));
       return { errors, unchanged: unchanged && xen.domainInfo(d.domid).maxMemoryKiB === info0.maxMemoryKiB, keysUnchanged, free };
     } finally {
       d.destroy();
       xs.close();
     }`,
  );
  const e = r.errors;
  const cfgErr = (field: string, message: RegExp) => ({ name: 'InvalidConfigError', code: 'INVALID_CONFIG', field, message });
  t.match(e.memStaticMax, cfgErr('memoryMiB', /from 16 to 64 .*static-max/), 'above memory/static-max (as libxl refuses)');
  t.match(e.memZero, cfgErr('memoryMiB', /at least 16/), 'target 0');
  t.match(e.memSmall, cfgErr('memoryMiB', /at least 16/), 'below the floor');
  t.match(e.memFraction, cfgErr('memoryMiB', /integer/), 'not an integer');
  t.match(e.memString, cfgErr('memoryMiB', /integer/), 'a string');
  t.match(e.memDom0, cfgErr('domid', /domain 0 is dom0/), 'domain 0 is refused');
  t.match(e.memBadDomid, cfgErr('domid', /0 to 32751/), 'a bad domid');
  t.match(e.memNoDomain, { name: 'XenNoSuchDomainError', message: /no domain 4321/ }, 'no such domain (memory)');
  t.match(e.memOverFree, cfgErr('memoryMiB', /what it holds plus what Xen has free/), `over free + held (free ${r.free} MiB)`);
  t.match(e.memDestroyed, { name: 'DestroyedError' }, 'a destroyed PvDomain');
  t.match(e.vcpusOver, cfgErr('vcpus', /from 1 to 2 .*max vCPUs/), 'above the max vCPUs');
  t.match(e.vcpusZero, cfgErr('vcpus', />= 1/), '0 vCPUs');
  t.match(e.vcpusFraction, cfgErr('vcpus', /integer/), 'not an integer');
  t.match(e.vcpusDom0, cfgErr('domid', /domain 0 is dom0/), 'domain 0 is refused');
  t.match(e.vcpusBadDomid, cfgErr('domid', /0 to 32751/), 'a bad domid');
  t.match(e.vcpusNoDomain, { name: 'XenNoSuchDomainError', message: /no domain 4321/ }, 'no such domain (vCPUs)');
  t.ok(r.unchanged, "Xen's limit and max vCPUs are unchanged after the refusals");
  t.ok(r.keysUnchanged, 'memory/target and cpu/I/availability are unchanged');
});
