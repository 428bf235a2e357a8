// The method's statistics: pure checks on fixed arrays, then the same rules checked on real runs of the
// bare runner (medians of the recorded samples, ratios against a baseline, the interleaved order).
import t from 'tap';
import { runBenchmark } from '../../src/bench/method/run';
import { interleavedSchedule } from '../../src/bench/method/schedule';
import { costRatio, geometricMean, median, summarize } from '../../src/bench/method/stats';
import { BareRunner } from '../../src/bench/runners/bare';
import type { BenchRunner, RunnerName } from '../../src/bench/runners/runner';

t.test('median, min and max of fixed arrays', async (t) => {
  t.equal(median([5]), 5);
  t.equal(median([3, 1, 2]), 2, 'odd count: the middle value, whatever the input order');
  t.equal(median([4, 1, 3, 2]), 2.5, 'even count: mean of the two middle values');
  t.equal(median([1, 100, 2, 3, 1000]), 3, 'outliers do not move it');
  t.same(summarize([7, 3, 9, 1, 5]), { median: 5, min: 1, max: 9, n: 5 });
  t.throws(() => median([]), { code: 'BENCH_FAILED' });
});

t.test('ratios read as cost whatever the unit', async (t) => {
  t.equal(costRatio(200, 100, 'lower'), 2, 'twice the time: 2x the cost');
  t.equal(costRatio(5, 10, 'higher'), 2, 'half the throughput: 2x the cost');
  t.equal(costRatio(20, 10, 'higher'), 0.5);
  t.throws(() => costRatio(0, 1, 'lower'), { code: 'BENCH_FAILED' });
  t.ok(Math.abs(geometricMean([2, 0.5]) - 1) < 1e-12, '2x and 0.5x cancel out');
  t.ok(Math.abs(geometricMean([1, 4]) - 2) < 1e-12);
});

t.test('schedule: warm-ups first, then A B C rounds', async (t) => {
  const s = interleavedSchedule(['a', 'b', 'c'], 2, 1);
  t.same(
    s.map((r) => `${r.warmup ? 'w' : ''}${r.runnerId}${r.round}`),
    ['wa0', 'wb0', 'wc0', 'a1', 'b1', 'c1', 'a2', 'b2', 'c2'],
  );
});

/** The bare runner under another identity, recording the order it was called in. */
function recordingBare(name: RunnerName, id: string, calls: string[]): BenchRunner {
  const bare = new BareRunner();
  return {
    name,
    id,
    location: 'host',
    description: `bare process standing in as ${id}`,
    iterationScale: {},
    probe: () => bare.probe(),
    version: () => bare.version(),
    prepare: (c) => bare.prepare(c),
    run: (inv, opts) => {
      calls.push(id);
      return bare.run(inv, opts);
    },
    cleanup: () => bare.cleanup(),
  };
}

t.test('real bare runs: interleaved order, medians of the samples, ratios against the baseline', async (t) => {
  const calls: string[] = [];
  // Two bare processes; the second stands in for runc, the baseline when docker is absent.
  const results = await runBenchmark({
    runners: [recordingBare('bare', 'bare', calls), recordingBare('runc', 'runc', calls)],
    groups: ['cpu', 'syscall'],
    runs: 3,
    warmups: 1,
    scale: 0.01,
    seed: 7,
  });
  const planned = interleavedSchedule(['bare', 'runc'], 3, 1, 7);
  t.same(calls, planned.map((p) => p.runnerId), 'the order the seed gives, warm-up round included');
  for (let round = 0; round < 4; round++) t.same(calls.slice(round * 2, round * 2 + 2).sort(), ['bare', 'runc'], `round ${round}: each runner once`);
  t.same(results.executed, planned, 'results record the order that ran');
  t.equal(results.settings.seed, 7, 'the seed is recorded');
  t.equal(results.baseline.runnerId, 'runc', 'runc is the baseline when docker did not run');
  t.match(results.baseline.note, /not Docker/);
  t.equal(results.metrics.length, 8, '3 cpu + 5 syscall tests');
  for (const m of results.metrics) {
    const bare = m.byRunner['bare']!;
    const runc = m.byRunner['runc']!;
    t.equal(bare.samples.length, 3, `${m.test}: 3 counted samples, warm-up not counted`);
    t.equal(bare.median, median(bare.samples), `${m.test}: median of its samples`);
    t.equal(bare.min, Math.min(...bare.samples));
    t.equal(bare.max, Math.max(...bare.samples));
    t.ok(bare.min <= bare.median && bare.median <= bare.max);
    t.equal(bare.ratio, costRatio(bare.median, runc.median, m.better), `${m.test}: ratio from the medians`);
    t.equal(runc.ratio, 1, 'the baseline against itself');
  }
  t.ok(results.headline['cpu']?.['bare'] !== undefined, 'headline has a per-group figure');
});

t.test('invalid settings are refused before anything runs', async (t) => {
  await t.rejects(runBenchmark({ runners: ['bare'], runs: 0 }), { code: 'INVALID_CONFIG' });
  await t.rejects(runBenchmark({ runners: ['bare'], scale: -1 }), { code: 'INVALID_CONFIG' });
  await t.rejects(runBenchmark({ runners: ['nope' as RunnerName] }), { code: 'INVALID_CONFIG' });
  await t.rejects(runBenchmark({ runners: ['bare'], seed: -1 }), { code: 'INVALID_CONFIG' });
  await t.rejects(runBenchmark({ runners: ['bare'], seed: 1.5 }), { code: 'INVALID_CONFIG' });
});
