// A kernel that does not build must fail the suite, with the build's error, never skip it. Runs
// the end-to-end zone-boot test in a child tap against a copy of kernel-configs/ whose zone
// fragment asks for an option Kconfig cannot keep (our build's own check, ~20 s, before compiling).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync } from 'node:fs';
import * as path from 'node:path';
import { kernelConfigsDir } from '../../src/kernel/fragment';

t.setTimeout(10 * 60_000);

t.test('an injected kernel-build failure fails the e2e test that needs the kernel', async (t) => {
  const configs = path.join(t.testdir(), 'kernel-configs');
  cpSync(kernelConfigsDir(), configs, { recursive: true });
  appendFileSync(path.join(configs, 'x86_64', 'zone.config'), '\n# injected by build-failure.test.ts\nCONFIG_BULKHEAD_INJECTED_FAILURE=y\n');
  const root = path.join(__dirname, '..', '..');
  const r = spawnSync(
    process.execPath,
    [path.join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs'), 'test/kernel/zone-boot.test.ts'],
    { cwd: root, encoding: 'utf8', env: { ...process.env, BULKHEAD_KERNEL_CONFIG_DIR: configs }, timeout: 9 * 60_000 },
  );
  const output = r.stdout + r.stderr;
  t.not(r.status, 0, 'the child suite fails');
  t.match(output, /CONFIG_BULKHEAD_INJECTED_FAILURE/, "the build's error, naming the option, is in the output");
  t.match(output, /KERNEL_BUILD_FAILED|did not keep/, 'reported as a kernel build failure');
  t.notMatch(output, /# \{ total: \d+, .*skip: [1-9]/, 'nothing was skipped');
});
