// The default image: Debian's static busybox with its applets, users, /tmp and /root, built on
// first use, keyed by what went in, and run for real (chroot into the mounted erofs).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import t from 'tap';
import { busyboxImage, ImageStore, listImages, removeImage, resolveImage } from '../../src/image';
import { isStaticElf } from '../../src/image/busybox';
import { openErofs, walk } from './fixtures/tree';

t.test('busybox, built on first use', async (t) => {
  const work = t.testdir();
  const store = new ImageStore(path.join(work, 'store'));
  const image = await resolveImage('busybox', { store, pull: 'never' });
  t.same(image.names, ['busybox:latest']);
  t.equal(image.source.kind, 'busybox-static');
  t.same(image.config.cmd, ['sh']);
  t.match(image.config.env, [/^PATH=.*\/usr\/bin.*\/bin$/]);
  t.match(image.config.labels['org.opencontainers.image.version'], /^v\d+\.\d+/);

  const root = openErofs(t, image.erofsPath);
  const tree = walk(root);
  t.ok(isStaticElf(fs.readFileSync(path.join(root, 'bin/busybox'))), '/bin/busybox is a static ELF');
  t.equal(tree.get('bin/busybox')?.mode, 0o755);
  const applets = execFileSync('/bin/busybox', ['--list-full'], { encoding: 'utf8' }).trim().split('\n').filter((a) => a !== 'bin/busybox');
  t.same(applets.filter((a) => tree.get(a)?.link !== '/bin/busybox'), [], `all ${applets.length} applets are links to /bin/busybox`);
  t.equal(tree.get('bin/sh')?.link, '/bin/busybox');
  t.equal(fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  t.match(fs.readFileSync(path.join(root, 'etc/group'), 'utf8'), /^root:x:0:\nnobody:x:65534:\n$/);
  t.equal(tree.get('tmp')?.mode, 0o1777);
  t.equal(tree.get('root')?.mode, 0o700);
  t.ok(['proc', 'sys', 'dev', 'run'].every((d) => tree.get(d)?.type === 'dir'), 'mount points for the agent');

  const run = spawnSync('chroot', [root, '/bin/sh', '-c', 'echo hello from $(id -un) in $(pwd); ls /bin | wc -l'], {
    encoding: 'utf8',
    env: { PATH: image.config.env[0]!.slice('PATH='.length) },
  });
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, /^hello from root in \/\n\s*\d+\n$/, 'the shell runs, and sees its users');

  const started = Date.now();
  const again = await resolveImage('docker.io/library/busybox:latest', { store, pull: 'never' });
  t.equal(again.digest, image.digest, 'the second use finds it');
  t.ok(Date.now() - started < 1000, 'quickly');

  const elsewhere = await busyboxImage({ store: new ImageStore(path.join(work, 'other-store')) });
  t.equal(elsewhere.digest, image.digest, 'the key is a digest of the content: another store builds the same one');

  const patched = path.join(work, 'busybox-patched');
  fs.writeFileSync(patched, Buffer.concat([fs.readFileSync('/bin/busybox'), Buffer.from('\0trailing byte')]));
  fs.chmodSync(patched, 0o755);
  const other = await busyboxImage({ store, busybox: patched });
  t.not(other.digest, image.digest, 'another busybox binary makes another image');

  await t.rejects(busyboxImage({ store, busybox: '/bin/ls' }), { code: 'IMAGE_BUILD_FAILED', message: /not a static ELF.*busybox-static/ });
  await t.rejects(busyboxImage({ store, busybox: path.join(work, 'missing') }), { code: 'IMAGE_BUILD_FAILED', message: /busybox-static/ });

  const removed = await removeImage('busybox', { store });
  t.same(removed, { untagged: ['busybox:latest'], deleted: [other.digest] }, 'busybox:latest pointed at the last one built');
  t.same(listImages({ store }).map((i) => i.digest).sort(), [image.digest], 'one image left, now without a name');
  t.same(listImages({ store })[0]!.names, []);
  const rebuilt = await resolveImage('busybox', { store });
  t.equal(rebuilt.digest, image.digest, 'resolving busybox again names the image of /bin/busybox');
});
