// The build lock: one holder at a time, and a lock left by a dead process is taken over.
import t from 'tap';
import { writeFileSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { acquireLock } from '../../src/util/lock';

t.test('a second taker waits until the first releases', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'k.lock');
  const first = await acquireLock(file);
  let waitedFor: number | undefined;
  let secondGot = false;
  const second = acquireLock(file, { pollMs: 20, onWait: (pid) => (waitedFor = pid) }).then((l) => {
    secondGot = true;
    return l;
  });
  await new Promise((r) => setTimeout(r, 150));
  t.equal(secondGot, false, 'still waiting while held');
  t.equal(waitedFor, process.pid, 'reports who holds it');
  first.release();
  const l2 = await second;
  t.ok(secondGot);
  l2.release();
  t.notOk(existsSync(file), 'released locks are removed');
});

t.test('a lock whose owner is dead is taken over', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'k.lock');
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  writeFileSync(file, `${dead} somehost\n`);
  const lock = await acquireLock(file, { pollMs: 20 });
  t.pass('acquired');
  lock.release();
});
