// Existing domains through bulkhead/xen, inside the Xen test host's dom0 (the run's one boot): a PV
// domU made by `xl create` (Debian's generic kernel and a busybox initramfs) is seen, paused,
// unpaused and destroyed by our code, its death is observed through XenStore, and bad domain ids
// are typed errors. (Our own domain builder is not written yet: xl makes the domains here.)
import t from 'tap';
import { writeBusyboxInitramfs } from '../support/busybox-initramfs';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ensureXenTree } from '../../src/host/xen';
import { inDom0, xenHost, type XenTestHost } from '../support/xen-host';

t.setTimeout(15 * 60_000);

async function guestConfig(host: XenTestHost, t: Parameters<XenTestHost['workdir']>[0], name: string, init: string): Promise<string> {
  const tree = await ensureXenTree();
  const dir = host.workdir(t);
  const initrd = writeBusyboxInitramfs(path.join(dir, 'initramfs.cpio'), `${init}\n`, { shLink: true });
  const cfg = path.join(dir, `${name}.cfg`);
  writeFileSync(
    cfg,
    [
      `name = "${name}"`,
      'type = "pv"',
      `kernel = "${path.join(tree.root, 'boot', `vmlinuz-${tree.kernelRelease}`)}"`,
      `ramdisk = "${initrd}"`,
      'memory = 128',
      'vcpus = 1',
      'extra = "console=hvc0 rdinit=/init loglevel=3"',
      '',
    ].join('\n'),
  );
  return cfg;
}

async function xlCreate(host: XenTestHost, cfg: string, paused: boolean): Promise<number> {
  const r = await host.session.run(['xl', 'create', ...(paused ? ['-p'] : []), cfg]);
  if (r.exitCode !== 0) throw new Error(`xl create failed: ${r.stderr}`);
  const name = /^name = "(.*)"$/m.exec(require('node:fs').readFileSync(cfg, 'utf8'))![1]!;
  const id = await host.session.run(['xl', 'domid', name]);
  return Number(id.stdout.trim());
}

t.test('pause, unpause, destroy and death of an xl-made domU', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const cfg = await guestConfig(host, t, 'bulkhead-pause', '/bin/busybox sleep 1000');
  const domid = await xlCreate(host, cfg, true);
  t.ok(domid > 0, `domain ${domid}`);
  const r = await inDom0<Record<string, unknown>>(
    host,
    `const id = ${domid};
     const states = [xen.domainInfo(id).state];
     xen.unpauseDomain(id); states.push(xen.domainInfo(id).state);
     xen.pauseDomain(id); states.push(xen.domainInfo(id).state);
     const listed = xen.xenHostInfo().domains.some((d) => d.domid === id);
     const death = xen.domainDeath(id);
     await new Promise((r) => setTimeout(r, 200));
     xen.destroyDomain(id);
     const end = await death;
     let after; try { xen.domainInfo(id); } catch (e) { after = { name: e.name, message: e.message }; }
     return { states, listed, end, after, left: xen.xenHostInfo().domains.map((d) => d.domid) };`,
  );
  const states = r.states as string[];
  t.equal(states[0], 'paused', 'xl create -p leaves it paused');
  t.not(states[1], 'paused', `unpaused: ${states[1]}`);
  t.equal(states[2], 'paused', 'paused again');
  t.ok(r.listed, 'the host info lists it');
  t.same(r.end, { domid, reason: 'destroyed' }, 'the death watch resolves with the reason');
  t.match(r.after, { name: 'XenNoSuchDomainError', message: new RegExp(`no domain ${domid}`) });
  t.same(r.left, [0], 'only dom0 is left');
});

t.test('a domU that powers itself off ends with the reason', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const cfg = await guestConfig(host, t, 'bulkhead-poweroff', 'echo bulkhead-domu-up; /bin/busybox poweroff -f');
  const domid = await xlCreate(host, cfg, true);
  const started = Date.now();
  const r = await inDom0<{ reason: string }>(host, `const p = xen.domainDeath(${domid}); xen.unpauseDomain(${domid}); return await p;`);
  t.match(r.reason, /^(poweroff|destroyed)$/, `ended: ${r.reason} after ${Date.now() - started} ms (xl's monitor destroys it on poweroff)`);
  await host.session.run(['xl', 'destroy', String(domid)]);
});

t.test('bad domain ids are typed errors', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await inDom0<Record<string, unknown>>(
    host,
    `const out = {};
     for (const [k, f] of [['info', () => xen.domainInfo(4321)], ['pause', () => xen.pauseDomain(4321)], ['destroy', () => xen.destroyDomain(4321)],
                           ['range', () => xen.domainInfo(70000)], ['dom0', () => xen.destroyDomain(0)]]) {
       try { f(); out[k] = 'no error'; } catch (e) { out[k] = { name: e.name, code: e.code, message: e.message }; }
     }
     try { await xen.domainDeath(4321); } catch (e) { out.death = e.name; }
     return out;`,
  );
  for (const k of ['info', 'pause', 'destroy']) t.match(r[k], { name: 'XenNoSuchDomainError', message: /no domain 4321/ }, k);
  t.match(r.range, { code: 'INVALID_CONFIG', message: /0 to 32751/ });
  t.match(r.dom0, { code: 'HYPERVISOR_ERROR', message: /refusing to destroy domain 0/ });
  t.equal(r.death, 'XenNoSuchDomainError');
});
