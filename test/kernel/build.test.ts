// `buildKernel`: builds (the first time on a machine: ~5 min idle, ~12 min on 2 busy cores) and
// caches the zone and host kernels; a second call is served from the cache. These tests never force
// a rebuild. In CI the first build happens here (or in `npm run kernels` as a pre-step).
import t from 'tap';
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { buildKernel, findKernel, loadFragment, readPin } from '../../src/kernel';
import { kernelCacheKey } from '../../src/kernel/build';
import { findDroppedOptions, parseFragment } from '../../src/kernel/fragment';

t.setTimeout(60 * 60_000);

/** True if the ELF file carries a Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY = 18). */
function hasPvhNote(file: string): boolean {
  const r = spawnSync('readelf', ['-n', file], { encoding: 'utf8' });
  return r.status === 0 && /^\s*Xen\s+\S+\s+.*(0x00000012|PHYS32_ENTRY)/m.test(r.stdout);
}

function isElf(file: string): boolean {
  const fd = openSync(file, 'r');
  const b = Buffer.alloc(4);
  readSync(fd, b, 0, 4, 0);
  closeSync(fd);
  return b.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
}

for (const flavor of ['zone', 'host'] as const) {
  t.test(`${flavor} kernel: built once, then cached`, async (t) => {
    // No skip: install-deps.sh installs the build tools, and the pinned source is a fixed download.
    const first = await buildKernel({ config: flavor });
    t.ok(isElf(first.vmlinux), 'vmlinux is an ELF file');
    t.ok(hasPvhNote(first.vmlinux), 'vmlinux has the PVH entry note');
    t.ok(statSync(first.bzImage).size > 500_000, 'bzImage is there');
    t.equal(first.info.config, flavor);
    t.equal(path.basename(first.dir), first.key);
    t.same(findDroppedOptions(loadFragment(flavor), readFileSync(first.config, 'utf8')), [], 'the cached .config has every requested option');

    const started = Date.now();
    const second = await buildKernel({ config: flavor, progress: false });
    const ms = Date.now() - started;
    t.equal(second.cached, true, 'second call uses the cache');
    t.equal(second.vmlinux, first.vmlinux);
    t.ok(ms < 5000, `second call took ${ms} ms`);
  });
}

t.test('a changed config gets a different cache key and is not found', async (t) => {
  const zone = loadFragment('zone');
  const changed = parseFragment(zone.text + '\nCONFIG_BULKHEAD_TEST_ONLY=y\n', 'changed.config');
  t.not(kernelCacheKey(changed, readPin()), kernelCacheKey(zone, readPin()));
  const file = path.join(t.testdir({ 'changed.config': changed.text }), 'changed.config');
  t.equal(await findKernel({ config: file }), undefined, 'findKernel never builds');
});
