// bulkhead/xen on this machine (not dom0): the addon loads whether or not Xen's libraries exist,
// reports each library plainly, and Xen calls fail with typed errors that say what is missing.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { ensureXenTree } from '../../src/host/xen';
import { probeHost } from '../../src/host';
import { requireXenLibraries, xenHostInfo, xenLibraries, XenUnavailableError } from '../../src/xen';

const ALL = ['libxentoollog', 'libxenctrl', 'libxenguest', 'libxenevtchn', 'libxengnttab', 'libxenstore', 'libxenforeignmemory'];

t.test('every library is reported, loaded or with the reason', async (t) => {
  const libs = xenLibraries();
  t.same(libs.map((l) => l.name).sort(), [...ALL].sort(), 'all seven libraries are listed');
  for (const l of libs) {
    if (l.loaded) t.notOk(l.error, `${l.name} loaded`);
    else t.match(l.error, l.soname, `${l.name} is missing, and the reason names ${l.soname}`);
  }
  const missing = libs.filter((l) => !l.loaded).map((l) => l.name);
  if (missing.length > 0) {
    t.throws(() => requireXenLibraries(ALL as never), { code: 'XEN_UNAVAILABLE', missing }, 'requireXenLibraries names exactly the missing ones');
  }
});

t.test('outside dom0, host info is XEN_UNAVAILABLE, with the reason', async (t) => {
  if (existsSync('/dev/xen/privcmd')) {
    t.pass('skipped: this machine is a Xen domain', { skip: 'this test is for machines without Xen' });
    return;
  }
  const err = (() => {
    try {
      xenHostInfo();
    } catch (e) {
      return e as XenUnavailableError;
    }
    return undefined;
  })();
  t.ok(err instanceof XenUnavailableError, 'a XenUnavailableError');
  t.equal(err?.code, 'XEN_UNAVAILABLE');
  t.match(err?.message, /libxenctrl|dom0/, `says what is missing: ${err?.message}`);
});

t.test('with the libraries on the loader path but no Xen, all load and xc_interface_open is what fails', async (t) => {
  if (existsSync('/dev/xen/privcmd')) {
    t.pass('skipped: this machine is a Xen domain', { skip: 'this test is for machines without Xen' });
    return;
  }
  const tree = await ensureXenTree();
  const script = `const x = require(${JSON.stringify(path.join(__dirname, '..', '..', 'dist', 'cjs', 'xen', 'index.js'))});
    let code; try { x.xenHostInfo(); } catch (e) { code = e.code + ': ' + e.message; }
    console.log(JSON.stringify({ loaded: x.xenLibraries().filter((l) => l.loaded).length, code }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { env: { ...process.env, LD_LIBRARY_PATH: tree.libDir }, encoding: 'utf8' }));
  t.equal(out.loaded, ALL.length, 'all seven load from the unpacked Debian packages');
  t.match(out.code, /^XEN_UNAVAILABLE: .*xc_interface_open.*dom0/, out.code);
});

t.test('doctor outside dom0 says what is missing for Xen', async (t) => {
  if (existsSync('/dev/xen/privcmd')) {
    t.pass('skipped: this machine is a Xen domain', { skip: 'this test is for machines without Xen' });
    return;
  }
  const report = probeHost();
  t.equal(report.xen.ok, false);
  t.equal(report.xen.libraries?.length, 7, 'every library is in the report');
  t.match(report.xen.meaning, /not running under Xen/);
  for (const l of report.xen.libraries ?? []) if (!l.loaded) t.match(report.xen.meaning + (l.name === 'libxenctrl' ? l.soname : ''), l.name, `${l.name} named`);
  t.ok(report.xen.fix, `and how to fix it: ${report.xen.fix}`);
});
