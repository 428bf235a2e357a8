// The method's guards against order effects and timer noise: a per-round shuffle from a recorded seed
// (repeatable, every runner once a round), and a floor on every counted sample's length, set from the
// last warm-up. The report names gVisor's build and platform wherever runsc appears.
import t from 'tap';
import { runBenchmark } from '../../src/bench/method/run';
import { calibratedIterations, MIN_SAMPLE_MS } from '../../src/bench/method/sample-floor';
import { interleavedSchedule, scheduledRounds } from '../../src/bench/method/schedule';
import { runnerLabel } from '../../src/bench/report/format';
import { renderMarkdown } from '../../src/bench/report';
import { findTest, iterationsFor } from '../../src/bench/workload';

t.test('shuffled rounds: same seed, same order; every round holds every runner once', async (t) => {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const one = interleavedSchedule(ids, 8, 1, 99);
  t.same(interleavedSchedule(ids, 8, 1, 99), one, 'repeatable from the seed');
  const orders = new Set<string>();
  for (let round = 0; round < 9; round++) {
    const slots = one.filter((s) => s.round === round);
    t.same(slots.map((s) => s.runnerId).sort(), ids, `round ${round}: every runner once`);
    t.ok(slots.every((s) => s.warmup === (round === 0)), `round ${round}: warm-up flag`);
    orders.add(slots.map((s) => s.runnerId).join(''));
  }
  t.ok(orders.size > 1, `the order changes between rounds (${orders.size} distinct orders in 9 rounds)`);
  t.not(JSON.stringify(interleavedSchedule(ids, 8, 1, 100)), JSON.stringify(one), 'another seed, another schedule');
});

t.test('the same schedule by round (bench/vmm): labels, warm-ups first, each order the shuffled one', async (t) => {
  const rounds = scheduledRounds(['ours', 'qemu'], 3, 1, 7);
  t.same(rounds.map((r) => r.label), ['warm-up 1', 'run 1/3', 'run 2/3', 'run 3/3']);
  t.same(rounds.map((r) => r.warmup), [true, false, false, false]);
  const flat = interleavedSchedule(['ours', 'qemu'], 3, 1, 7);
  t.same(rounds.flatMap((r) => r.order), flat.map((s) => s.runnerId), 'the order is interleavedSchedule\'s, grouped');
});

t.test('sample floor: a short warm-up raises the iterations, a long one does not', async (t) => {
  t.equal(calibratedIterations(1000, MIN_SAMPLE_MS * 2e6), 1000, 'long enough: unchanged');
  const raised = calibratedIterations(200, 10_000); // 200 calls in 10 µs
  t.ok(raised * (10_000 / 200) >= MIN_SAMPLE_MS * 1e6 || raised === 200 * 1000, `raised to ${raised}: past the floor, or at the cap`);
  t.equal(calibratedIterations(200, 10), 200 * 1000, 'capped at 1000x');
  t.equal(calibratedIterations(5, 0), 5, 'no timing: unchanged');
});

t.test('a real bare run: the seed and the floor are recorded, and short tests ran longer when counted', async (t) => {
  const results = await runBenchmark({ runners: ['bare'], groups: ['syscall'], runs: 1, warmups: 1, scale: 0.0001, seed: 5 });
  t.equal(results.settings.seed, 5);
  t.equal(results.settings.minSampleMs, MIN_SAMPLE_MS);
  const bare = results.runners.find((r) => r.id === 'bare')!;
  const getppid = findTest('sys_getppid');
  // 100 getppid calls take microseconds anywhere: the floor must have raised them.
  t.ok(bare.iterations['sys_getppid']! > iterationsFor(getppid, 0.0001), `getppid: ${bare.iterations['sys_getppid']} counted iterations`);
  const md = renderMarkdown(results);
  t.match(md, /shuffled with seed 5 \(`--seed 5` repeats it\)/);
  t.match(md, new RegExp(`at least ~${MIN_SAMPLE_MS} ms`));
});

t.test('gVisor is named with its build and platform', async (t) => {
  t.equal(runnerLabel('runsc', 'runsc', { runsc: 'runsc version 0.0~20221219.0' }), "runsc (gVisor: Debian's 2022-12-19 runsc build, platform ptrace only)");
  t.match(runnerLabel('runsc@emulated-host', 'runsc'), /Debian's 2022 runsc build, platform ptrace only/);
  t.equal(runnerLabel('docker', 'docker', {}), 'docker');
});
