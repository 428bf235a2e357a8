// Config fragments: both shipped configs parse, the cache key follows the options (not the
// comments), and the dropped-option checker catches what Kconfig would silently discard.
import t from 'tap';
import { KERNEL_FLAVORS, loadFragment } from '../../src/kernel';
import { kernelCacheKey } from '../../src/kernel/build';
import { findDroppedOptions, fragmentHash, parseFragment } from '../../src/kernel/fragment';

for (const flavor of KERNEL_FLAVORS) {
  t.test(`${flavor}.config parses`, async (t) => {
    const f = loadFragment(flavor);
    t.ok(f.options.length > 30, `${f.options.length} options`);
    const byName = new Map(f.options.map((o) => [o.name, o.value]));
    t.equal(byName.get('CONFIG_MODULES'), 'n', 'no modules');
    t.equal(byName.get('CONFIG_PVH'), 'y', 'PVH entry');
    t.equal(byName.get('CONFIG_SERIAL_8250_CONSOLE'), 'y', 'serial console');
    t.equal(byName.get('CONFIG_DEVTMPFS'), 'y');
    t.equal(byName.get('CONFIG_CGROUPS'), 'y');
    t.equal(byName.get('CONFIG_SECCOMP'), 'y');
  });
}

t.test('zone.config asks for the zone devices and filesystems', async (t) => {
  const want = [
    'CONFIG_VIRTIO_MMIO', 'CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES', 'CONFIG_VIRTIO_BLK', 'CONFIG_VIRTIO_CONSOLE',
    'CONFIG_HW_RANDOM_VIRTIO', 'CONFIG_VIRTIO_NET', 'CONFIG_VIRTIO_VSOCKETS', 'CONFIG_EXT4_FS', 'CONFIG_EROFS_FS',
    'CONFIG_OVERLAY_FS', 'CONFIG_TMPFS', 'CONFIG_KVM_GUEST', 'CONFIG_SMP', 'CONFIG_USER_NS', 'CONFIG_NET_NS',
  ];
  const opts = new Map(loadFragment('zone').options.map((o) => [o.name, o.value]));
  for (const name of want) t.equal(opts.get(name), 'y', name);
});

t.test('host.config asks for KVM, 9p, virtio-serial and vhost-vsock', async (t) => {
  const want = [
    'CONFIG_KVM', 'CONFIG_KVM_AMD', 'CONFIG_KVM_INTEL', 'CONFIG_VIRTIO_PCI', 'CONFIG_VIRTIO_CONSOLE', 'CONFIG_NET_9P',
    'CONFIG_NET_9P_VIRTIO', 'CONFIG_9P_FS', 'CONFIG_9P_FS_POSIX_ACL', 'CONFIG_OVERLAY_FS', 'CONFIG_TMPFS',
    'CONFIG_DEVTMPFS', 'CONFIG_VHOST_VSOCK', 'CONFIG_UNIX', 'CONFIG_INET', 'CONFIG_INOTIFY_USER', 'CONFIG_CGROUPS',
  ];
  const opts = new Map(loadFragment('host').options.map((o) => [o.name, o.value]));
  for (const name of want) t.equal(opts.get(name), 'y', name);
});

t.test('the cache key follows the options, not the comments', async (t) => {
  const base = parseFragment('# a comment\nCONFIG_SMP=y\n# CONFIG_MODULES is not set\n');
  const recommented = parseFragment('# another comment\n\nCONFIG_SMP=y\n\n# why: because\n# CONFIG_MODULES is not set\n');
  const changed = parseFragment('CONFIG_SMP=y\nCONFIG_MODULES=y\n');
  t.equal(fragmentHash(base), fragmentHash(recommented));
  t.not(fragmentHash(base), fragmentHash(changed));
  t.match(fragmentHash(base), /^[0-9a-f]{16}$/);
  const pin = (version: string) => ({ package: 'linux-source-6.12', version, sha256: '0'.repeat(64) });
  t.not(kernelCacheKey(base, pin('6.12.1-1')), kernelCacheKey(base, pin('6.12.2-1')), 'the pinned version is part of the key');
  t.equal(kernelCacheKey(base, pin('1:6.12-1')), `1_6.12-1-${fragmentHash(base)}`, 'no colon in directory names');
});

t.test('malformed fragments are rejected with the line number', async (t) => {
  t.throws(() => parseFragment('CONFIG_SMP=y\nSMP=y\n', 'x.config'), /x\.config:2/);
  t.throws(() => parseFragment('CONFIG_SMP=y\nCONFIG_SMP=n\n', 'x.config'), /already set on line 1/);
});

t.test('findDroppedOptions reports what Kconfig did not keep', async (t) => {
  const f = parseFragment('CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_N=64\n');
  const expanded = 'CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_N=64\n';
  t.same(findDroppedOptions(f, expanded), [
    { name: 'CONFIG_B', wanted: 'y', got: 'n' },
    { name: 'CONFIG_C', wanted: 'n', got: 'y' },
  ]);
  t.same(findDroppedOptions(f, 'CONFIG_A=y\nCONFIG_B=y\nCONFIG_N=64\n'), [], 'absent counts as not set');
});
