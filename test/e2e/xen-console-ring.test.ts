// The PV console ring reader inside the Xen test host's dom0: a ring in a granted page, its "guest"
// side written through a second mapping of the same grant, an event channel as the doorbell. The
// guest's output arrives as a stream (also across the index wrap), our input reaches its ring, and
// impossible indices end the stream with a typed error instead of a copy out of bounds.
import t from 'tap';
import { inDom0, xenHost } from '../support/xen-host';

t.setTimeout(15 * 60_000);

t.test('console ring: guest output as a stream, input queued, lying indices refused', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const r = await inDom0<Record<string, unknown>>(
    host,
    `const gt = xen.GrantTable.open();
     const ch = xen.EventChannel.open();
     const page = gt.share(0, 1);
     const guest = gt.map(0, page.refs, { writable: true });
     const a = ch.bindUnbound(0), b = ch.bindInterdomain(0, a);
     const ring = new xen.ConsoleRing(page);
     const stream = ring.stream(ch, a);
     const chunks = [];
     let failed;
     stream.on('data', (c) => chunks.push(c.toString()));
     stream.on('error', (e) => (failed = { code: e.code, message: e.message }));
     const u32 = (v) => { const x = Buffer.alloc(4); x.writeUInt32LE(v >>> 0); return x; };
     let prod = 0;
     const guestWrite = (text) => {
       for (const ch of Buffer.from(text)) { guest.write(1024 + (prod & 2047), Buffer.from([ch])); prod = (prod + 1) >>> 0; }
       guest.write(3084, u32(prod));
     };
     const settle = () => new Promise((r) => setTimeout(r, 300));
     guestWrite('hello from the guest\\n'); ch.notify(b); await settle();
     // Both indices just below 2^32: the next write wraps them.
     guest.write(3080, u32(0xfffffff8)); prod = 0xfffffff8; guest.write(3084, u32(prod));
     guestWrite('across the wrap\\n'); ch.notify(b); await settle();
     const queued = ring.write('typed in');
     const input = guest.read(0, 8).toString(), inProd = guest.read(3076, 4).readUInt32LE(0);
     // A guest claiming 5000 bytes in a 2048-byte ring.
     guest.write(3084, u32(((prod + 5000) >>> 0))); ch.notify(b); await settle();
     const out = { text: chunks.join(''), queued, input, inProd, failed };
     ch.close(); gt.close();
     return out;`,
  );
  t.equal(r.text, 'hello from the guest\nacross the wrap\n', "the guest's output, in order, across the index wrap");
  t.equal(r.queued, 8);
  t.equal(r.input, 'typed in', 'our input is in the guest\'s input ring');
  t.equal(r.inProd, 8, 'and in_prod says so');
  t.match(r.failed, { code: 'HYPERVISOR_ERROR', message: /impossible/ }, 'impossible indices end the stream with an error');
});
