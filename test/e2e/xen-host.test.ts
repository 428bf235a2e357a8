// The Xen test host: Xen 4.17 under QEMU TCG with Debian's generic kernel as PV dom0. It boots (a
// boot failure fails here, with the console's tail), Xen's tools answer inside (`xl info`, xenstore),
// dom0 has Xen's devices, and the project is reachable inside at its own path.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { packagePath } from '../../src/util/package-root';
import { xenHost } from '../support/xen-host';

t.setTimeout(15 * 60_000);

t.test('the Xen test host boots and Xen answers in dom0', async (t) => {
  const host = await xenHost(t);
  if (!host) return;
  const info = await host.session.run(['xl', 'info']);
  t.equal(info.exitCode, 0, `xl info exits 0 (stderr: ${info.stderr.trim()})`);
  t.match(info.stdout, /^xen_version\s*:\s*4\.17\./m, 'Xen 4.17 runs');
  t.match(info.stdout, /^xen_caps\s*:.*xen-3\.0-x86_64/m, 'and can run 64-bit PV guests');
  const free = Number(/^free_memory\s*:\s*(\d+)/m.exec(info.stdout)?.[1]);
  t.ok(free >= 1024, `${free} MiB free for domUs`);

  const list = await host.session.run(['xl', 'list']);
  t.equal(list.exitCode, 0, list.stderr);
  t.match(list.stdout, /^Domain-0\s+0\s/m, 'dom0 is domain 0');

  const name = await host.session.run(['xenstore-read', '/local/domain/0/name']);
  t.equal(name.stdout.trim(), 'Domain-0', 'xenstored runs and xen-init-dom0 wrote dom0 into it');
  const consoled = await host.session.run(['sh', '-c', 'kill -0 "$(cat /run/xenconsoled.pid)"']);
  t.equal(consoled.exitCode, 0, 'xenconsoled runs');

  const devices = await host.session.run(['ls', '/dev/xen']);
  for (const dev of ['privcmd', 'evtchn', 'gntdev', 'gntalloc', 'xenbus']) {
    t.match(devices.stdout, new RegExp(`^${dev}$`, 'm'), `/dev/xen/${dev} exists`);
  }

  const pkg = await host.session.run(['cat', packagePath('package.json')]);
  t.match(pkg.stdout, /"name": "bulkhead"/, 'the project is reachable at its own path');
  const dir = host.workdir(t);
  writeFileSync(path.join(dir, 'hello'), 'from outside');
  const seen = await host.session.run(['cat', path.join(dir, 'hello')]);
  t.equal(seen.stdout, 'from outside', 'a file written outside after boot is seen inside');
});
