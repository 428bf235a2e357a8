// The workload's output parser refuses anything but exactly the tests asked for; iteration counts
// scale and never fall below the floor; the build is cached by the source's hash.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { buildWorkload, findTest, iterationsFor, parseWorkloadOutput, WORKLOAD_TESTS, workloadArgs } from '../../src/bench/workload';

const line = (test: string, value = 1.5) => JSON.stringify({ test, iterations: 10, elapsed_ns: 15, value, check: 0 });

t.test('parser', async (t) => {
  t.same(parseWorkloadOutput(`${line('cpu_int')}\n${line('sys_read', 200)}\n`, ['cpu_int', 'sys_read']), [
    { test: 'cpu_int', iterations: 10, elapsedNs: 15, value: 1.5 },
    { test: 'sys_read', iterations: 10, elapsedNs: 15, value: 200 },
  ]);
  t.throws(() => parseWorkloadOutput(`hello\n${line('cpu_int')}`, ['cpu_int']), { code: 'BENCH_FAILED', message: /not JSON/ }, 'runtime chatter on stdout');
  t.throws(() => parseWorkloadOutput(line('cpu_int'), ['cpu_int', 'sys_read']), { message: /was asked for/ }, 'a missing test');
  t.throws(() => parseWorkloadOutput(`${line('sys_read')}\n${line('cpu_int')}`, ['cpu_int', 'sys_read']), { message: /was asked for/ }, 'wrong order');
  t.throws(() => parseWorkloadOutput(line('cpu_int', 0), ['cpu_int']), { message: /non-positive/ });
  t.throws(() => parseWorkloadOutput('{"test":"cpu_int"}', ['cpu_int']), { message: /unexpected object/ });
});

t.test('iteration counts', async (t) => {
  const getppid = findTest('sys_getppid');
  t.equal(iterationsFor(getppid, 1), getppid.defaultIterations);
  t.equal(iterationsFor(getppid, 0.5), getppid.defaultIterations / 2);
  t.equal(iterationsFor(getppid, 1, { syscall: 0.01 }), getppid.defaultIterations / 100, 'a runner scales its slow group');
  t.equal(iterationsFor(getppid, 1, { cpu: 0.01 }), getppid.defaultIterations, 'other groups untouched');
  t.equal(iterationsFor(findTest('sys_fork'), 1e-9), 5, 'never below the floor');
  t.same(workloadArgs([getppid], 0.001), ['sys_getppid=1000']);
  t.equal(new Set(WORKLOAD_TESTS.map((w) => w.name)).size, 11, 'eleven distinct tests');
  t.throws(() => findTest('nope'), { code: 'BENCH_FAILED' });
});

t.test('build: cached by source hash, rebuilt when the source changes', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bulkhead-bench-build-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const src = path.join(dir, 'w.c');
  fs.writeFileSync(src, 'int main(void) { return 0; }\n');
  const first = await buildWorkload({ cacheDir: path.join(dir, 'cache'), sourcePath: src });
  t.ok(fs.statSync(first).mode & 0o100, 'an executable');
  t.equal(await buildWorkload({ cacheDir: path.join(dir, 'cache'), sourcePath: src }), first, 'same source: same cached binary');
  fs.writeFileSync(src, 'int main(void) { return 1; }\n');
  t.not(await buildWorkload({ cacheDir: path.join(dir, 'cache'), sourcePath: src }), first, 'changed source: a new build');
  fs.writeFileSync(src, 'this is not C\n');
  await t.rejects(buildWorkload({ cacheDir: path.join(dir, 'cache'), sourcePath: src }), { code: 'BENCH_FAILED', message: /building the workload/ });
  t.same(fs.readdirSync(path.join(dir, 'cache')).flatMap((h) => fs.readdirSync(path.join(dir, 'cache', h))).filter((f) => f.endsWith('.tmp')), [], 'no half-built binary left');
});
