// `bulkhead host run -- CMD...`: streams the command's output and exits with its code.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { emulatedHostMissing, testKernel } from '../support/emulated-host';
import { tsNodeArgs } from './fixtures/helpers';

t.setTimeout(60 * 60_000);

t.test('bulkhead host run', async (t) => {
  const missing = emulatedHostMissing();
  if (missing) return void t.pass(`skipped: ${missing}`, { skip: missing });
  const k = { value: await testKernel('host') };
  const main = path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts');
  const r = spawnSync(
    process.execPath,
    [...tsNodeArgs(), main, 'host', 'run', '--kernel', k.value.vmlinux, '--', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 7'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  t.equal(r.status, 7, 'exits with the command’s code');
  t.equal(r.stdout, 'to-out\n');
  t.match(r.stderr, /to-err\n/);
});

t.test('bulkhead host run without a command is a usage error', async (t) => {
  const main = path.join(__dirname, '..', '..', 'src', 'cli', 'main.ts');
  const r = spawnSync(process.execPath, [...tsNodeArgs(), main, 'host', 'run', '--'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /missing argument: \[--\] CMD/);
});
