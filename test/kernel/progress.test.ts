// Build progress: rewritten in place on a terminal, one line per interval otherwise.
import t from 'tap';
import { ProgressLine, formatDuration } from '../../src/kernel/progress';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  const stream = { isTTY, columns: 80, write: (s: string) => (writes.push(s), true) } as unknown as NodeJS.WriteStream;
  return { stream, writes };
}

t.test('on a terminal the status line is rewritten in place', async (t) => {
  const { stream, writes } = fakeStream(true);
  const p = new ProgressLine('kernel zone', { stream, intervalMs: 0 });
  p.update('1 steps, CC a.o');
  p.update('2 steps, CC b.o');
  p.done('built');
  t.match(writes[0], /^\r\x1b\[Kkernel zone: 1 steps, CC a\.o \[0:00\]$/);
  t.match(writes[1], /^\r\x1b\[Kkernel zone: 2 steps/);
  t.equal(writes.at(-1), 'kernel zone: built\n', 'the final message is a plain line');
  t.ok(writes.every((w) => !w.includes('\n') || w.endsWith('\n')), 'no stray newlines in status updates');
});

t.test('elsewhere at most one line per interval', async (t) => {
  const { stream, writes } = fakeStream(false);
  const p = new ProgressLine('kernel host', { stream, intervalMs: 10_000 });
  for (let i = 0; i < 100; i++) p.update(`${i} steps`);
  p.done('built');
  t.same(writes, ['kernel host: 0 steps [0:00]\n', 'kernel host: built\n']);
});

t.test('formatDuration', async (t) => {
  t.equal(formatDuration(0), '0:00');
  t.equal(formatDuration(65.9), '1:05');
  t.equal(formatDuration(754), '12:34');
});
