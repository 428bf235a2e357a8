// bootLinux's consoleTail after a panic (src/kvm/boot-linux.ts tailWithPanic): a panic's register
// dump and stack trace run longer than the 20-line tail, and a CI run lost the panic line that way
// (panic=0, 2026-12-03); the tail must still name it.
import t from 'tap';
import { tailWithPanic } from '../../src/kvm';

const dump = Array.from({ length: 40 }, (_, i) => `[    3.0${i}] R${i}: 0000000000000000\r`).join('\n');

t.test('a panic line older than the tail is kept first, then the last lines', async (t) => {
  const text = `[    2.9] Run /init as init process\r\n[    2.99] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000\r\n${dump}\n`;
  const tail = tailWithPanic(text, 20).split('\n');
  t.equal(tail[0], '[    2.99] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000000', 'the panic line first');
  t.equal(tail[1], '[…]', 'then a mark of the lines left out');
  t.equal(tail.length, 20, 'and as many lines as asked for in all');
  t.equal(tail.at(-1), '[    3.039] R39: 0000000000000000\r', 'ending with the last line');
});

t.test('a tail that holds the panic line, or a console without one, is the plain tail', async (t) => {
  const text = `a\nb\n[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\nc\n`;
  t.equal(tailWithPanic(text, 2), '[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\nc', 'the panic is among the last lines');
  t.equal(tailWithPanic(`${dump}\n`, 2), '[    3.038] R38: 0000000000000000\r\n[    3.039] R39: 0000000000000000\r', 'no panic: the last lines');
});
