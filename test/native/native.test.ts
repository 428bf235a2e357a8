/**
 * The C core's own tests (native/tests), built with ASan + UBSan and run on the real /dev/kvm by
 * `make -C native test`. Each native TAP result becomes one assertion here, so their passes and
 * failures count in the suite's totals; a sanitizer report fails the run through the exit code.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.join(__dirname, '..', '..');
const result = spawnSync('make', ['-s', '-C', path.join(root, 'native'), 'test'], {
  encoding: 'utf8',
  timeout: 15 * 60_000,
  maxBuffer: 64 * 1024 * 1024,
});

const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
// Only top-level results (no indentation) of the native TAP streams.
const lines = (result.stdout ?? '').split('\n').filter((l) => /^(not )?ok \d+/.test(l));

t.ok(lines.length > 0, 'the native test runners reported results', { output: output.slice(-4000) });
for (const line of lines) {
  const m = /^(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b ?(.*))?$/.exec(line);
  if (!m) continue;
  const [, failed, name = line, directive, reason] = m;
  if (directive === 'SKIP') t.pass(name, { skip: reason ?? true });
  else if (failed) t.fail(name, { output: output.slice(-4000) });
  else t.pass(name);
}
t.equal(result.status, 0, 'make -C native test exits 0 (no failure, no sanitizer report)', {
  signal: result.signal,
  error: result.error?.message,
  tail: output.slice(-4000),
});

// The same core tests under ThreadSanitizer (a binary of their own: TSan and ASan cannot share one),
// for the vCPU-thread, I/O-thread and controller handshakes.
t.test('the core tests under ThreadSanitizer', async (t) => {
  const tsan = spawnSync('make', ['-s', '-C', path.join(root, 'native'), 'tsan-test'], {
    encoding: 'utf8',
    timeout: 20 * 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const out = `${tsan.stdout ?? ''}${tsan.stderr ?? ''}`;
  const results = (tsan.stdout ?? '').split('\n').filter((l) => /^(not )?ok \d+/.test(l));
  t.ok(results.length > 0, `the TSan runner reported ${results.length} results`, { tail: out.slice(-3000) });
  t.same(results.filter((l) => l.startsWith('not ok')), [], 'none failed');
  t.notMatch(out, /WARNING: ThreadSanitizer/, 'no data race reported', { tail: out.slice(-4000) });
  t.equal(tsan.status, 0, 'make -C native tsan-test exits 0', { tail: out.slice(-3000) });
});
