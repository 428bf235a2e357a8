// Our own PV domain builder (createPvDomain: libxenctrl + libxenguest's xc_dom_*, no xl/libxl) in the
// Xen test host: the xen zone kernel boots with a tiny initramfs whose init prints a marker and
// powers off; the marker reaches the console stream; domainDeath says poweroff. Create/destroy xN
// leaves no domain (xl list) and no file descriptor behind. Bad input gives typed errors, before or
// after a half-built domain (which is destroyed).
import t from 'tap';
import { writeBusyboxInitramfs } from '../support/busybox-initramfs';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { testKernel } from '../support/emulated-host';
import { inDom0, xenHost } from '../support/xen-host';

t.setTimeout(30 * 60_000);

const CYCLES = 20;

function initramfs(dir: string): string {
  return writeBusyboxInitramfs(path.join(dir, 'initramfs.cpio'), 'echo "bulkhead-own-build-up $(/bin/busybox uname -r)"\n/bin/busybox poweroff -f\n');
}

t.test('createPvDomain boots the xen zone kernel, its console is a stream, it powers off', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const initrd = initramfs(host.workdir(t));
  const cfg = { kernel: kernel.vmlinux, initrd, cmdline: 'console=hvc0 quiet rdinit=/init', memoryMiB: 128, vcpus: 1 };
  const r = await inDom0<{ text: string; reason: string; createMs: number; firstLineMs: number; left: boolean; keys: boolean; name: string; consoleError: string | null; ended: boolean }>(
    host,
    `const cfg = ${JSON.stringify(cfg)};
     const t0 = Date.now();
     const d = xen.createPvDomain({ ...cfg, name: 'bulkhead-own-' + process.pid });
     const createMs = Date.now() - t0;
     const xs = xen.XenStore.open();
     const name = xs.read('/local/domain/' + d.domid + '/name');
     let text = '', firstLineMs = -1;
     let consoleError = null, ended = false;
     d.console.on('error', (e) => { consoleError = e.message; });
     d.console.on('end', () => { ended = true; });
     d.console.on('data', (c) => { text += c.toString('latin1'); if (firstLineMs < 0 && /bulkhead-own-build-up/.test(text)) firstLineMs = Date.now() - t0; });
     const death = d.death();
     d.unpause();
     // unref: a pending timer would keep this node (and the test) alive for the full 240 s.
     const end = await Promise.race([death, new Promise((_, rej) => setTimeout(() => rej(new Error('no death in 240 s; console: ' + text.slice(-2000))), 240000).unref())]);
     await new Promise((r) => setTimeout(r, 200));
     d.destroy();
     await new Promise((r) => setTimeout(r, 100));
     const left = !!xen.findDomain(d.domid);
     let keys = true; try { xs.ls('/local/domain/' + d.domid); } catch { keys = false; }
     xs.close();
     return { text, reason: end.reason, createMs, firstLineMs, left, keys, name, consoleError, ended };`,
  );
  t.match(r.text, /bulkhead-own-build-up 6\.12\./, "the init's marker reached our console stream");
  t.equal(r.reason, 'poweroff', 'domainDeath reports poweroff');
  t.match(r.name, /^bulkhead-own-/, 'its name is in XenStore');
  t.notOk(r.left, 'destroyed: gone from Xen');
  t.notOk(r.keys, 'its XenStore keys are removed');
  t.equal(r.consoleError, null, 'destroy ends the console stream without an error (no read of the released ring)');
  t.ok(r.ended, 'the console stream ended');
  t.comment(`create ${r.createMs} ms, first console line ${r.firstLineMs} ms after create began`);
});

t.test(`create/destroy x${CYCLES} leaves no domain and no handle`, async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const initrd = initramfs(host.workdir(t));
  const cfg = { kernel: kernel.vmlinux, initrd, cmdline: 'console=hvc0 quiet', memoryMiB: 64, vcpus: 1 };
  const r = await inDom0<{ before: number; after: number; ids: number[]; left: number[]; ms: number[] }>(
    host,
    `const fs = require('node:fs');
     const cfg = ${JSON.stringify(cfg)};
     const fds = () => fs.readdirSync('/proc/self/fd').length;
     const warm = xen.createPvDomain({ ...cfg, name: 'bulkhead-warm-' + process.pid }); warm.destroy();
     const before = fds();
     const ids = [], ms = [];
     for (let i = 0; i < ${CYCLES}; i++) {
       const t0 = Date.now();
       const d = xen.createPvDomain({ ...cfg, name: 'bulkhead-cycle-' + process.pid + '-' + i });
       ms.push(Date.now() - t0);
       ids.push(d.domid);
       d.destroy();
     }
     const after = fds();
     const left = ids.filter((id) => xen.findDomain(id));
     return { before, after, ids, left, ms };`,
  );
  t.equal(r.ids.length, CYCLES);
  t.same(r.left, [], 'none of them is in the domain list');
  t.equal(r.after, r.before, 'no file descriptor left open (grant, event channel, privcmd, xenstore)');
  const list = await host.session.run(['xl', 'list']);
  for (const id of r.ids) t.notMatch(list.stdout, new RegExp(`^\\S+\\s+${id}\\s`, 'm'), `xl list has no domain ${id}`);
  t.notMatch(list.stdout, /bulkhead-cycle-/, 'xl list shows none of the cycled names');
  t.comment(`create times (ms): ${r.ms.join(', ')}`);
});

t.test('typed errors: missing kernel, memory over free, vcpus out of range, a bad kernel destroyed halfway', async (t) => {
  const kernel = await testKernel('xen');
  const host = await xenHost(t);
  if (!host) return;
  const dir = host.workdir(t);
  const initrd = initramfs(dir);
  const notElf = path.join(dir, 'not-a-kernel');
  writeFileSync(notElf, Buffer.alloc(8192, 0x41));
  const base = { kernel: kernel.vmlinux, initrd, cmdline: 'console=hvc0', memoryMiB: 64, vcpus: 1, name: 'bulkhead-bad' };
  const r = await inDom0<Record<string, { name: string; code: string; field?: string; message: string; stage?: string } | number>>(
    host,
    `const base = ${JSON.stringify(base)};
     const fs = require('node:fs');
     const fds = () => fs.readdirSync('/proc/self/fd').length;
     const catchIt = (cfg) => { try { xen.createPvDomain(cfg); return { name: 'none', code: 'none', message: 'no error' }; } catch (e) { return { name: e.name, code: e.code, field: e.field, stage: e.stage, message: e.message }; } };
     const domsBefore = xen.xenHostInfo().domains.length;
     const before = fds();
     const out = {
       missing: catchIt({ ...base, kernel: '/nonexistent/vmlinux' }),
       memory: catchIt({ ...base, memoryMiB: xen.xenHostInfo().freeMemoryMiB + 64 }),
       vcpus0: catchIt({ ...base, vcpus: 0 }),
       vcpusBig: catchIt({ ...base, vcpus: 100000 }),
       notElf: catchIt({ ...base, kernel: ${JSON.stringify(notElf)} }),
     };
     out.fdsLeft = fds() - before;
     out.domainsLeft = xen.xenHostInfo().domains.length - domsBefore;
     return out;`,
  );
  t.match(r.missing, { name: 'InvalidConfigError', code: 'INVALID_CONFIG', field: 'kernel' }, 'a missing kernel');
  t.match(r.memory, { name: 'InvalidConfigError', code: 'INVALID_CONFIG', field: 'memoryMiB' }, "memory above Xen's free memory");
  t.match(r.vcpus0, { name: 'InvalidConfigError', field: 'vcpus' }, '0 vCPUs');
  t.match(r.vcpusBig, { name: 'InvalidConfigError', field: 'vcpus' }, '100000 vCPUs');
  t.match(r.notElf, { name: 'XenDomainBuildError', code: 'HYPERVISOR_ERROR', stage: 'kernel' }, 'a file that is no kernel fails in the builder');
  t.equal(r.domainsLeft, 0, 'the half-built domain is destroyed');
  t.equal(r.fdsLeft, 0, 'no handle left');
});
