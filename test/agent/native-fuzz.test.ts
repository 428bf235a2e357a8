// The agent's C parsers under libFuzzer (ASan + UBSan), for a bounded time from the corpora in
// native/agent/fuzz/corpus: the host's frames and requests (fuzz_frames), and the image's
// passwd/group files (fuzz_users), and whole sessions over the real loop with the services stubbed
// (fuzz_session). BH_AGENT_FUZZ_SECONDS sets the time per target (default 10).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

t.setTimeout(180_000);

const dir = path.join(__dirname, '..', '..', 'native', 'agent');
const clang = spawnSync('clang', ['--version']);
if (clang.error) {
  const why = 'clang is not installed (apt-get install clang libclang-rt-14-dev): no libFuzzer';
  t.pass(`skipped: ${why}`, { skip: why });
} else {
  const seconds = process.env.BH_AGENT_FUZZ_SECONDS ?? '10';
  const r = spawnSync('make', ['-s', '-C', dir, 'fuzz-smoke', `FUZZ_SECONDS=${seconds}`], { encoding: 'utf8' });
  t.equal(r.status, 0, 'make fuzz-smoke', { output: (r.stdout + r.stderr).slice(-3000) });
  for (const target of ['fuzz_frames', 'fuzz_users', 'fuzz_session']) {
    const line = new RegExp(`^ok \\d+ - agent ${target}: (\\d+) inputs, no finding$`, 'm').exec(r.stdout);
    t.ok(line, `${target}: no finding`);
    if (line) t.ok(Number(line[1]) > 500, `${target} ran ${line[1]} inputs in ${seconds} s`);
  }
}
