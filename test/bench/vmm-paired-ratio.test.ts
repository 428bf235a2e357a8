// The per-round ratio of the devices benchmark: each counted round's ours/QEMU, warm-ups left out,
// a round missing either side left out.
import t from 'tap';
import { pairedRatios } from '../../src/bench/vmm/report';
import type { ThroughputSample } from '../../src/bench/vmm/devices';

const s = (vmm: 'ours' | 'qemu', round: number, mibPerS: number, warmup = false): ThroughputSample =>
  ({ vmm, kind: 'vsock-out', round, warmup, bytes: 1, ns: 1, mibPerS });

t.test('one ratio per counted round with both sides', async (t) => {
  const r = pairedRatios([
    s('ours', 0, 100, true), s('qemu', 0, 1, true), // warm-up: not counted
    s('ours', 1, 60), s('qemu', 1, 50),
    s('qemu', 2, 66), s('ours', 2, 13.2),
    s('ours', 3, 55), s('qemu', 3, 55),
    s('ours', 4, 70), // no QEMU figure in this round
  ], 'vsock-out')!;
  t.same(r.samples.map((x) => Math.round(x * 100) / 100), [1.2, 0.2, 1]);
  t.equal(Math.round(r.median * 100) / 100, 1, 'the median is the middle round');
  t.equal(Math.round(r.min * 100) / 100, 0.2);
});

t.test('no pairs, no figure', async (t) => {
  t.equal(pairedRatios([s('ours', 1, 60)], 'vsock-out'), undefined);
  t.equal(pairedRatios([s('ours', 1, 60), s('qemu', 1, 50)], 'blk'), undefined, 'another kind');
});
