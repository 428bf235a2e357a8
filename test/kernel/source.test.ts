// The kernel source: Debian version order (checked against dpkg itself), the pin file, and the
// extraction of a .deb whose members are named ./usr/src/… (as every real Debian .deb's are),
// built here with dpkg-deb --build.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { compareDebianVersions, readPin } from '../../src/kernel';
import { describeOffered } from '../../src/kernel/pin';
import { extractKernelTree } from '../../src/kernel/source';

t.test('Debian versions compare by dpkg rules, not as strings', async (t) => {
  const pairs: [string, string][] = [
    ['6.12.117-1~deb12u1', '6.12.99-1~deb12u1'],
    ['6.12.117-1~deb12u1', '6.12.117-1'],
    ['6.12.117-1', '6.12.117-1~deb12u1'],
    ['1:6.1-1', '6.12-1'],
    ['1.0~rc1', '1.0'],
    ['1.0', '1.0~rc1'],
    ['1.0a', '1.0'],
    ['1.0-1', '1.0-1'],
    ['2.0.1', '2.0.01'],
    ['1.0+dfsg-2', '1.0-2'],
    ['6.12.117-1~deb12u1', '6.12.115-2~deb12u1'],
    ['0.9', '0.10'],
    ['1.2.3-4ubuntu1', '1.2.3-4'],
  ];
  for (const [a, b] of pairs) {
    const ours = Math.sign(compareDebianVersions(a, b));
    const dpkg = ['lt', 'eq', 'gt'].findIndex((op) => spawnSync('dpkg', ['--compare-versions', a, op, b]).status === 0) - 1;
    t.equal(ours, dpkg, `${a} vs ${b}: ${['<', '=', '>'][ours + 1]} (dpkg agrees)`);
  }
});

t.test('the pin names package, version and sha256', async (t) => {
  const pin = readPin();
  t.equal(pin.package, 'linux-source-6.12');
  t.match(pin.version, /^6\.12\.\d+-/);
  t.match(pin.sha256, /^[0-9a-f]{64}$/);
  const dir = t.testdir({ 'bad.json': JSON.stringify({ package: 'linux-source-6.12', version: '6.12.1-1', sha256: 'abc' }) });
  t.throws(() => readPin(path.join(dir, 'bad.json')), { code: 'INVALID_CONFIG', field: /sha256/ }, 'a malformed pin is refused, naming the field');
  t.throws(() => readPin(path.join(dir, 'none.json')), { code: 'KERNEL_SOURCE_UNAVAILABLE' });
});

t.test('an unavailable pinned version names the pinned and the offered versions, in dpkg order', async (t) => {
  const pin = { package: 'linux-source-6.12', version: '6.12.117-1~deb12u1', sha256: '0'.repeat(64) };
  const text = describeOffered(pin, [
    { version: '6.12.119-1~deb12u1', sha256: '1'.repeat(64) },
    { version: '6.12.99-1~deb12u1', sha256: '2'.repeat(64) },
  ]);
  t.match(text, /6\.12\.119-1~deb12u1 \(newer than the pin\)/);
  t.match(text, /6\.12\.99-1~deb12u1 \(older than the pin\)/, '99 < 117 although "99" > "117" as strings');
  t.match(describeOffered(pin, []), /apt offers no version/);
});

t.test('extraction works for a .deb whose members are named ./usr/src/…', async (t) => {
  const dir = t.testdir();
  const pkg = path.join(dir, 'pkg');
  mkdirSync(path.join(pkg, 'DEBIAN'), { recursive: true });
  mkdirSync(path.join(pkg, 'usr', 'src'), { recursive: true });
  writeFileSync(
    path.join(pkg, 'DEBIAN', 'control'),
    'Package: linux-source-test\nVersion: 1.0-1\nArchitecture: all\nMaintainer: bulkhead <t@example.invalid>\nDescription: test\n',
  );
  // A tiny "kernel tree" packed the way Debian packs linux-source: linux-source-X/Makefile in a .tar.xz.
  const tree = path.join(dir, 'linux-source-test');
  mkdirSync(path.join(tree, 'arch'), { recursive: true });
  writeFileSync(path.join(tree, 'Makefile'), 'VERSION = 6\n');
  t.equal(spawnSync('tar', ['-cJf', path.join(pkg, 'usr', 'src', 'linux-source-test.tar.xz'), '-C', dir, 'linux-source-test']).status, 0);
  const deb = path.join(dir, 'test.deb');
  const built = spawnSync('dpkg-deb', ['--root-owner-group', '--build', pkg, deb], { encoding: 'utf8' });
  t.equal(built.status, 0, built.stderr);
  const members = spawnSync('dpkg-deb', ['-c', deb], { encoding: 'utf8' }).stdout;
  t.match(members, /\.\/usr\/src\/linux-source-test\.tar\.xz/, 'the members are named ./usr/src/… like a real .deb');

  const work = path.join(dir, 'work');
  mkdirSync(work);
  const out = await extractKernelTree(deb, work);
  t.equal(readFileSync(path.join(out, 'Makefile'), 'utf8'), 'VERSION = 6\n', 'the tree is unpacked');
  t.same(readdirSync(work), ['tree'], 'only the tree is left in the work directory');
});
