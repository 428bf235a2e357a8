// QEMU must die with the process that started it, even when that process is SIGKILLed (no exit
// handlers run): EmulatedHost starts QEMU under `setpriv --pdeathsig SIGKILL`.
import t from 'tap';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { isAlive } from '../../src/util/process';
import { emulatedHostMissing, testKernel } from '../support/emulated-host';
import { tsNodeArgs, waitUntil } from './fixtures/helpers';

t.setTimeout(60 * 60_000);

t.test('SIGKILL of the parent kills QEMU', async (t) => {
  const missing = emulatedHostMissing();
  if (missing) return void t.pass(`skipped: ${missing}`, { skip: missing });
  const k = { value: await testKernel('host') };

  const child = spawn(process.execPath, [...tsNodeArgs(), path.join(__dirname, 'fixtures', 'start-host.ts'), k.value.vmlinux], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const qemuPid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /QEMU_PID=(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('close', (code) => reject(new Error(`child exited ${code} before booting: ${stderr}`)));
  });
  t.ok(isAlive(qemuPid), `QEMU (pid ${qemuPid}) runs`);
  child.kill('SIGKILL');
  t.ok(await waitUntil(() => !isAlive(qemuPid), 5000), 'QEMU is gone after its parent was SIGKILLed');
});
