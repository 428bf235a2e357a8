// Every option a fragment asks for survives `make allnoconfig` + olddefconfig on the real kernel
// source (the same check buildKernel runs before compiling, here without compiling anything).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { KERNEL_FLAVORS, loadFragment } from '../../src/kernel';
import { describeDropped, findDroppedOptions } from '../../src/kernel/fragment';
import { ensureKernelSource } from '../../src/kernel/source';

t.setTimeout(15 * 60_000); // the first run may download (153 MB) and extract the source

t.test('requested options survive olddefconfig', async (t) => {
  const srcDir = (await ensureKernelSource()).dir;
  for (const flavor of KERNEL_FLAVORS) {
    const fragment = loadFragment(flavor);
    const out = t.testdir();
    const make = (...args: string[]) => {
      const r = spawnSync('make', ['-s', '-C', srcDir, `O=${out}`, ...args], { encoding: 'utf8' });
      t.equal(r.status, 0, `make ${args[0]} (${flavor})`, { stderr: r.stderr });
    };
    make('allnoconfig', `KCONFIG_ALLCONFIG=${fragment.path}`);
    make('olddefconfig');
    const dropped = findDroppedOptions(fragment, readFileSync(path.join(out, '.config'), 'utf8'));
    t.same(dropped, [], `${flavor}: nothing dropped${dropped.length ? ': ' + describeDropped(dropped) : ''}`);
  }
});
