// createPvDomainAsync in the Xen test host: libxenguest's build runs on the thread pool while the
// event loop keeps running (timers fire during it; the sync build, measured alongside, blocks them),
// the domain it returns boots, a failing build leaves no domain and no handle, and an abort while the
// build runs destroys the domain the build made as soon as it returns; a process that exits during a
// build leaves no domain (the native side destroys it at exit), and one it was handed outlives it.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { writeBusyboxInitramfs } from '../support/busybox-initramfs';
import { testKernel } from '../support/emulated-host';
import { inDom0, xenHost } from '../support/xen-host';

t.setTimeout(20 * 60_000);

function initramfs(dir: string): string {
  return writeBusyboxInitramfs(path.join(dir, 'initramfs.cpio'), 'echo "bulkhead-async-up"\n/bin/busybox poweroff -f\n');
}

t.test('the async build keeps the event loop running, and its domain boots', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const cfg = { kernel: kernel.vmlinux, initrd: initramfs(host.workdir(t)), cmdline: 'console=hvc0 quiet rdinit=/init', memoryMiB: 128, vcpus: 1 };
  type Run = { ms: number; ticks: number; maxGapMs: number };
  const r = await inDom0<{ sync: Run[]; async: Run[]; returnedMs: number; text: string; reason: string; left: boolean }>(
    host,
    `const cfg = ${JSON.stringify(cfg)};
     const now = () => Number(process.hrtime.bigint()) / 1e6;
     // A 5 ms timer counts its ticks while the build is pending and keeps the longest gap between them
     // (from the call to the first tick, and from the last tick to the result, included): the loop's worst stall.
     const measure = async (build) => {
       let pending = true, ticks = 0, maxGap = 0;
       const t0 = now();
       let last = t0;
       const iv = setInterval(() => { if (!pending) return; const n = now(); maxGap = Math.max(maxGap, n - last); last = n; ticks++; }, 5);
       const d = await build();
       const end = now();
       pending = false;
       clearInterval(iv);
       maxGap = Math.max(maxGap, end - last);
       return { d, run: { ms: Math.round(end - t0), ticks, maxGapMs: Math.round(maxGap) } };
     };
     const sync = [], async_ = [];
     for (let i = 0; i < 3; i++) {
       const s = await measure(async () => xen.createPvDomain({ ...cfg, name: 'bulkhead-sync-' + process.pid + '-' + i }));
       s.d.destroy(); sync.push(s.run);
       const a = await measure(() => xen.createPvDomainAsync({ ...cfg, name: 'bulkhead-async-' + process.pid + '-' + i }));
       a.d.destroy(); async_.push(a.run);
     }
     const t0 = Date.now();
     const p = xen.createPvDomainAsync({ ...cfg, name: 'bulkhead-async-boot-' + process.pid });
     const returnedMs = Date.now() - t0;
     const d = await p;
     let text = '';
     d.console.on('data', (c) => { text += c.toString('latin1'); });
     const death = d.death();
     d.unpause();
     // unref: a pending timer would keep this node (and the test) alive for the full 240 s.
     const end = await Promise.race([death, new Promise((_, rej) => setTimeout(() => rej(new Error('no death in 240 s; console: ' + text.slice(-2000))), 240000).unref())]);
     await new Promise((r) => setTimeout(r, 200));
     d.destroy();
     return { sync, async: async_, returnedMs, text, reason: end.reason, left: !!xen.findDomain(d.domid) };`,
  );
  t.ok(r.returnedMs < 100, `createPvDomainAsync returns a promise at once (${r.returnedMs} ms)`);
  for (const a of r.async) t.ok(a.ticks >= 5, `a 5 ms timer fired ${a.ticks} times during a ${a.ms} ms async build`);
  for (const s of r.sync) t.equal(s.ticks, 0, `the sync build (${s.ms} ms) blocks the timer (the control: this check can fail)`);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const asyncGap = median(r.async.map((a) => a.maxGapMs)), syncMs = median(r.sync.map((s) => s.ms));
  t.ok(asyncGap < syncMs / 2, `the event loop's worst stall during an async build, ${asyncGap} ms, is under half a sync build, ${syncMs} ms (medians of 3)`);
  t.match(r.text, /bulkhead-async-up/, 'the domain from the async build boots: its marker is on our console stream');
  t.equal(r.reason, 'poweroff');
  t.notOk(r.left, 'destroyed');
  t.comment(`sync builds: ${JSON.stringify(r.sync)}; async builds: ${JSON.stringify(r.async)}`);
});

t.test('a failing async build leaves no domain, no XenStore keys and no handle', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const dir = host.workdir(t);
  const notElf = path.join(dir, 'not-a-kernel');
  writeFileSync(notElf, Buffer.alloc(8192, 0x41));
  const base = { kernel: kernel.vmlinux, initrd: initramfs(dir), cmdline: 'console=hvc0', memoryMiB: 64, vcpus: 1, name: 'bulkhead-async-bad' };
  type E = { name: string; code: string; field?: string; stage?: string; message: string };
  const r = await inDom0<{ errors: Record<string, E>; domainsBefore: number[]; domainsAfter: number[]; fdsLeft: number; homesBefore: string[]; homesAfter: string[] }>(
    host,
    `const base = ${JSON.stringify(base)};
     const fs = require('node:fs');
     const fds = () => fs.readdirSync('/proc/self/fd').length;
     const ids = () => xen.xenHostInfo().domains.map((d) => d.domid);
     const catchIt = async (cfg) => { try { const d = await xen.createPvDomainAsync(cfg); d.destroy(); return { name: 'none', code: 'none', message: 'no error' }; } catch (e) { return { name: e.name, code: e.code, field: e.field, stage: e.stage, message: e.message }; } };
     (await xen.createPvDomainAsync({ ...base, name: 'bulkhead-async-warm' })).destroy();
     const homes = () => { const xs = xen.XenStore.open(); try { return xs.ls('/local/domain'); } finally { xs.close(); } };
     const domainsBefore = ids(), homesBefore = homes();
     const before = fds();
     const errors = {
       missing: await catchIt({ ...base, kernel: '/nonexistent/vmlinux' }),
       memory: await catchIt({ ...base, memoryMiB: xen.xenHostInfo().freeMemoryMiB + 64 }),
       notElf: await catchIt({ ...base, kernel: ${JSON.stringify(notElf)} }),
     };
     return { errors, domainsBefore, domainsAfter: ids(), fdsLeft: fds() - before, homesBefore, homesAfter: homes() };`,
  );
  t.match(r.errors.missing, { name: 'InvalidConfigError', code: 'INVALID_CONFIG', field: 'kernel' }, 'a missing kernel');
  t.match(r.errors.memory, { name: 'InvalidConfigError', code: 'INVALID_CONFIG', field: 'memoryMiB' }, "memory above Xen's free memory");
  t.match(r.errors.notElf, { name: 'XenDomainBuildError', stage: 'kernel' }, 'a file that is no kernel fails in the builder, on the thread pool, after the domain was created');
  t.same(r.domainsAfter, r.domainsBefore, 'the domain list is what it was');
  t.same(r.homesAfter, r.homesBefore, 'no XenStore home (/local/domain/N) is left behind');
  t.equal(r.fdsLeft, 0, 'no handle left');
});

t.test('an abort while the async build runs destroys the domain it made; an aborted signal builds nothing', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const cfg = { kernel: kernel.vmlinux, initrd: initramfs(host.workdir(t)), cmdline: 'console=hvc0', memoryMiB: 64, vcpus: 1, name: 'bulkhead-async-abort' };
  const r = await inDom0<{ err: string; reason: string; sawDomain: number[]; before: number[]; after: number[]; pre: string; preDomains: number[]; fdsLeft: number }>(
    host,
    `const cfg = ${JSON.stringify(cfg)};
     const fs = require('node:fs');
     const fds = () => fs.readdirSync('/proc/self/fd').length;
     const ids = () => xen.xenHostInfo().domains.map((d) => d.domid);
     (await xen.createPvDomainAsync({ ...cfg, name: 'bulkhead-async-warm' })).destroy();
     const before = ids(), fd0 = fds();
     const ac = new AbortController();
     const p = xen.createPvDomainAsync(cfg, { signal: ac.signal });
     // Abort once the build has created its domain (it shows in Xen's list while libxenguest loads the kernel).
     let sawDomain = [];
     const poll = setInterval(() => {
       const extra = ids().filter((id) => !before.includes(id));
       if (extra.length && !ac.signal.aborted) { sawDomain = extra; ac.abort(new Error('stop the build')); }
     }, 2);
     let err = 'none';
     try { (await p).destroy(); } catch (e) { err = e.message; }
     clearInterval(poll);
     const after = ids();
     let pre = 'none';
     try { (await xen.createPvDomainAsync(cfg, { signal: AbortSignal.abort() })).destroy(); } catch (e) { pre = e.name; }
     return { err, reason: 'stop the build', sawDomain, before, after, pre, preDomains: ids(), fdsLeft: fds() - fd0 };`,
  );
  t.equal(r.err, r.reason, 'the build rejects with the abort reason');
  t.equal(r.sawDomain.length, 1, `the abort came while the half-built domain ${r.sawDomain[0]} existed`);
  t.same(r.after, r.before, 'and that domain is gone once the build returned');
  t.equal(r.pre, 'AbortError', 'an already aborted signal rejects with AbortError');
  t.same(r.preDomains, r.before, 'and builds nothing');
  t.equal(r.fdsLeft, 0, 'no handle left');
});

t.test('a process that exits while a build runs leaves no domain; a domain it was handed outlives it', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const cfg = { kernel: kernel.vmlinux, initrd: initramfs(host.workdir(t)), cmdline: 'console=hvc0', memoryMiB: 64, vcpus: 1, name: 'bulkhead-async-exit' };
  // process.exit() as soon as the second build's domain shows in Xen's list (libxenguest is still
  // loading the kernel on the thread pool): nothing in JavaScript gets to clean up.
  const r = await inDom0<{ before: number[]; kept: number; halfBuilt: number[]; settled: boolean }>(
    host,
    `const cfg = ${JSON.stringify(cfg)};
     const ids = () => xen.xenHostInfo().domains.map((d) => d.domid);
     const before = ids();
     const kept = await xen.createPvDomainAsync({ ...cfg, name: 'bulkhead-async-kept' });
     let settled = false;
     xen.createPvDomainAsync(cfg).then(() => (settled = true), () => (settled = true));
     await new Promise(() => {
       const poll = setInterval(() => {
         const halfBuilt = ids().filter((id) => !before.includes(id) && id !== kept.domid);
         if (!halfBuilt.length) return;
         process.stdout.write(JSON.stringify({ ok: true, value: { before, kept: kept.domid, halfBuilt, settled } }));
         process.exit(0);
       }, 2);
     });`,
  );
  t.equal(r.halfBuilt.length, 1, `the process exited while the half-built domain ${r.halfBuilt[0]} existed`);
  t.equal(r.settled, false, 'and before its build returned');
  const after = await inDom0<{ ids: number[] }>(
    host,
    `const list = () => xen.xenHostInfo().domains.map((d) => d.domid);
     // A domain destroyed while the builder still mapped its pages lingers until the process's
     // mappings went with it: give Xen a moment to reap it.
     for (let i = 0; i < 50 && list().includes(${r.halfBuilt[0]}); i++) await new Promise((r) => setTimeout(r, 100));
     const ids = list();
     if (ids.includes(${r.kept})) xen.destroyDomain(${r.kept});
     const xs = xen.XenStore.open();
     try { xs.rm('/local/domain/${r.kept}'); } finally { xs.close(); }
     return { ids };`,
  );
  t.notOk(after.ids.includes(r.halfBuilt[0]!), 'the half-built domain was destroyed at exit');
  t.ok(after.ids.includes(r.kept), 'the domain the process had been handed is still there after it exited');
  t.same(after.ids.filter((id) => id !== r.kept).sort(), [...r.before].sort(), 'nothing else is left');
});
