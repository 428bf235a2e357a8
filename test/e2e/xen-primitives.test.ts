// bulkhead/xen's primitives against real Xen, inside the Xen test host's dom0 (the run's one boot):
// a granted page mapped back, an event channel looped back, a XenStore watch and a retried
// transaction conflict, typed errors for bad input, and nothing left open afterwards.
import t from 'tap';
import { inDom0, xenHost } from '../support/xen-host';

t.setTimeout(15 * 60_000);

t.test('grant tables: a page shared by dom0 is mapped back, contents verified, both released', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await inDom0<Record<string, unknown>>(
    host,
    `const gt = xen.GrantTable.open();
     const shared = gt.share(0, 2);
     const pattern = Buffer.alloc(8192); for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
     shared.write(0, pattern);
     const mapped = gt.map(0, shared.refs, { writable: true });
     const back = mapped.read(0, 8192);
     mapped.write(4096, Buffer.from('written through the mapping'));
     const seen = shared.read(4096, 27).toString();
     let outside; try { mapped.read(8190, 4); } catch (e) { outside = e.code; }
     const open = gt.regions;
     mapped.release(); shared.release();
     let afterRelease; try { mapped.read(0, 1); } catch (e) { afterRelease = e.code; }
     const left = gt.regions; gt.close();
     return { refs: shared.refs.length, same: back.equals(pattern), seen, outside, open, left, afterRelease };`,
  );
  t.equal(r.refs, 2, 'two grant references');
  t.ok(r.same, 'the mapping reads what was written into the shared pages');
  t.equal(r.seen, 'written through the mapping', 'and a write through the mapping shows in the shared pages');
  t.equal(r.outside, 'INVALID_CONFIG', 'a read past the end is refused');
  t.equal(r.open, 2);
  t.equal(r.left, 0, 'released regions are gone');
  t.equal(r.afterRelease, 'INVALID_STATE', 'a released region cannot be read');
});

t.test('grant tables: a reference that does not exist is a typed error naming it', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await inDom0<Record<string, unknown>>(
    host,
    `const gt = xen.GrantTable.open();
     const out = {};
     try { gt.map(0, [60000]); } catch (e) { out.missing = { name: e.name, code: e.code, message: e.message }; }
     try { gt.map(0x7ff5, [1]); } catch (e) { out.badDomid = { code: e.code, message: e.message }; }
     try { gt.share(0, 0); } catch (e) { out.noPages = e.code; }
     out.left = gt.regions; gt.close();
     return out;`,
  );
  const missing = r.missing as { name: string; code: string; message: string };
  t.equal(missing?.name, 'XenGrantRefError');
  t.match(missing?.message, /60000.*domain 0/, missing?.message);
  t.match(r.badDomid, { code: 'INVALID_CONFIG', message: /0 to 32751/ }, 'a domid beyond DOMID_FIRST_RESERVED is refused');
  t.equal(r.noPages, 'INVALID_CONFIG');
  t.equal(r.left, 0, 'a failed map leaves no region');
});

t.test('event channels: loopback notify arrives on the other end, twice; a missing domain is typed', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await inDom0<Record<string, unknown>>(
    host,
    `const ch = xen.EventChannel.open();
     const a = ch.bindUnbound(0);
     const b = ch.bindInterdomain(0, a);
     const events = ch.events();
     const got = [];
     // Xen raises a freshly bound interdomain port once, so an event sent before the bind is not lost.
     const bindEvent = (await events.next()).value;
     const t0 = process.hrtime.bigint();
     ch.notify(b); got.push((await events.next()).value);
     ch.notify(a); got.push((await events.next()).value);
     ch.notify(b); got.push((await events.next()).value);
     const us = Number(process.hrtime.bigint() - t0) / 3000;
     const out = { a, b, bindEvent, got, us };
     try { ch.bindInterdomain(999, 1); } catch (e) { out.noDomain = { name: e.name, message: e.message }; }
     try { ch.notify(12345); } catch (e) { out.notOurs = e.code; }
     ch.close();
     out.done = (await events.next()).done;
     return out;`,
  );
  t.not(r.a, r.b, `two ports (${r.a}, ${r.b})`);
  t.equal(r.bindEvent, r.b, 'the bind itself raises the new port once');
  t.same(r.got, [r.a, r.b, r.a], 'each notify fires the other end, and a delivered port is unmasked again');
  t.comment(`loopback notify round trip inside TCG: ${Math.round(r.us as number)} µs`);
  t.match(r.noDomain, { name: 'XenNoSuchDomainError', message: /no domain 999/ });
  t.equal(r.notOurs, 'INVALID_CONFIG', 'a port this handle did not bind is refused');
  t.equal(r.done, true, 'close() ends the iterator');
});

t.test('xenstore: read/write/mkdir/ls/perms/rm, a watch fires, a conflicting transaction is retried', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await inDom0<Record<string, unknown>>(
    host,
    `const xs = xen.XenStore.open();
     const other = xen.XenStore.open();
     const base = '/local/domain/0/bulkhead-test-' + process.pid;
     xs.mkdir(base);
     xs.write(base + '/a', 'one');
     xs.write(base + '/b', Buffer.from([0, 1, 2, 255]));
     const out = { a: xs.read(base + '/a'), b: [...xs.readBuffer(base + '/b')], ls: xs.ls(base).sort() };
     xs.setPermissions(base + '/a', [{ domid: 0, read: false, write: false }, { domid: 5, read: true, write: false }]);
     out.perms = xs.getPermissions(base + '/a');
     try { xs.read(base + '/nope'); } catch (e) { out.noEntry = { name: e.name, message: e.message }; }
     try { xs.write(base + '/big', 'x'.repeat(4097)); } catch (e) { out.tooBig = e.code; }

     const w = xs.watch(base + '/c');
     const first = (await w.events.next()).value;
     other.write(base + '/c', 'changed');
     const second = (await w.events.next()).value;
     out.watch = [first, second];
     w.close();
     out.watchDone = (await w.events.next()).done;

     xs.write(base + '/n', '1');
     const conflicts = [];
     let runs = 0;
     const value = await xs.transaction((tx) => {
       runs++;
       const n = Number(tx.read(base + '/n'));
       if (runs === 1) other.write(base + '/n', '10');
       tx.write(base + '/n', String(n + 1));
       return n + 1;
     }, { onConflict: (a) => conflicts.push(a) });
     out.tx = { value, runs, conflicts, final: xs.read(base + '/n') };
     xs.rm(base);
     try { xs.ls(base); } catch (e) { out.removed = e.name; }
     xs.close(); other.close();
     try { xs.read(base); } catch (e) { out.closed = e.code; }
     return out;`,
  );
  t.equal(r.a, 'one');
  t.same(r.b, [0, 1, 2, 255], 'binary values round-trip');
  t.same(r.ls, ['a', 'b']);
  t.same(r.perms, [{ domid: 0, read: false, write: false }, { domid: 5, read: true, write: false }], 'permissions round-trip');
  t.match(r.noEntry, { name: 'XenStoreNoEntryError', message: /no XenStore node .*\/nope/ });
  t.equal(r.tooBig, 'INVALID_CONFIG', 'a value over 4096 bytes is refused');
  t.match(r.watch, [/\/c$/, /\/c$/], 'the watch fires on registration and on the change');
  t.equal(r.watchDone, true, 'closing the watch ends its iterator');
  t.same(r.tx, { value: 11, runs: 2, conflicts: [1], final: '11' }, 'the conflicting transaction was retried once and committed on the new value');
  t.equal(r.removed, 'XenStoreNoEntryError', 'rm removed the whole subtree');
  t.equal(r.closed, 'INVALID_STATE', 'a closed XenStore says so');
});

t.test('nothing is left open: 20 rounds of every handle leave the fd count where it was', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await inDom0<{ before: number; after: number }>(
    host,
    `const fs = require('fs');
     const fds = () => fs.readdirSync('/proc/self/fd').length;
     const round = () => {
       const gt = xen.GrantTable.open(); const s = gt.share(0, 1); gt.map(0, s.refs); gt.close();
       const ch = xen.EventChannel.open(); const a = ch.bindUnbound(0); ch.bindInterdomain(0, a); ch.events(); ch.close();
       const xs = xen.XenStore.open(); xs.watch('/local/domain/0'); xs.close();
     };
     round();
     await new Promise((r) => setTimeout(r, 50));
     const before = fds();
     for (let i = 0; i < 20; i++) round();
     await new Promise((r) => setTimeout(r, 50));
     return { before, after: fds() };`,
  );
  t.equal(r.after, r.before, `${r.before} descriptors before, ${r.after} after`);
});
