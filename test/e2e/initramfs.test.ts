// The emulated host's initramfs is a valid newc cpio that the system's cpio can list (no QEMU needed).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { agentSource } from '../../src/host/emulated/agent';
import { buildInitramfs } from '../../src/host/emulated/initramfs';
import { writeCpio } from '../../src/util/cpio';

t.test('writeCpio output lists with cpio -t', async (t) => {
  const archive = writeCpio([
    { name: 'dir', type: 'dir', mode: 0o755 },
    { name: 'dir/file', type: 'file', mode: 0o644, data: 'hello\n' },
    { name: 'dir/link', type: 'symlink', mode: 0o777, data: 'file' },
    { name: 'dev/console', type: 'chardev', mode: 0o600, rdev: [5, 1] },
  ]);
  t.equal(archive.length % 4, 0, 'padded to 4 bytes');
  const r = spawnSync('cpio', ['-t', '--quiet'], { input: archive, encoding: 'utf8' });
  if (r.error) return void t.skip('cpio not installed', async () => undefined);
  t.same(r.stdout.trim().split('\n'), ['dir', 'dir/file', 'dir/link', 'dev/console']);
});

t.test('the initramfs has busybox, /init, the agent and the settings', async (t) => {
  if (!existsSync('/bin/busybox')) return void t.skip('no /bin/busybox (apt-get install busybox-static)', async () => undefined);
  const archive = buildInitramfs({ nodePath: '/usr/bin/node', home: '/root', mountTag: 'host', cache9p: 'loose', msize: 512000, hostname: 'h' });
  const r = spawnSync('cpio', ['-t', '--quiet'], { input: archive, encoding: 'utf8' });
  if (r.error) return void t.skip('cpio not installed', async () => undefined);
  for (const name of ['bin/busybox', 'init', 'agent.js', 'etc/bulkhead.env', 'dev/console']) t.match(r.stdout, name);
});

t.test('the agent source is self-contained JavaScript', async (t) => {
  const src = agentSource();
  const r = spawnSync(process.execPath, ['--check', '-'], { input: src, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.notMatch(src, /require\("\.\.?\//, 'no relative requires');
});
