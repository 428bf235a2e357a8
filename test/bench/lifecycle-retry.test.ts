// The lifecycle run's harness: a figure call a sandbox loses (under TCG a zone now and then dies of
// the nested-SVM flake) runs again after the sandbox's recover(), with the lost sample dropped and the
// retry recorded in results and report; FIGURE_ATTEMPTS losses in a row, or a loss by a sandbox that
// cannot recover, fail that sandbox for the run. Sandboxes here are plain objects that count and throw on cue:
// the harness's bookkeeping is what is tested (real zones: lifecycle.test.ts).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import t from 'tap';
import { writeLifecycleReport } from '../../src/bench/lifecycle/report';
import { FIGURE_ATTEMPTS, runLifecycle } from '../../src/bench/lifecycle/run';
import type { LifecycleSandbox } from '../../src/bench/lifecycle/sandbox';
import type { SandboxKind } from '../../src/bench/lifecycle/types';

/** A sandbox whose exec throws on the listed calls (1-based), and never answers on the `hangOnCalls`. */
function flaky(kind: SandboxKind, failOnCalls: number[], canRecover = true, hangOnCalls: number[] = []) {
  const state = { calls: 0, recovered: 0, abandoned: 0 };
  const s: LifecycleSandbox = {
    kind,
    probe: async () => ({ available: true }),
    prepare: async () => undefined,
    execTrue: async () => {
      state.calls++;
      if (failOnCalls.includes(state.calls)) throw new Error(`lost at call ${state.calls}`);
      if (hangOnCalls.includes(state.calls)) await new Promise(() => undefined);
      return 10;
    },
    cleanup: async () => undefined,
    ...(canRecover
      ? {
          recover: async (after: { abandoned: boolean }) => {
            state.recovered++;
            if (after.abandoned) state.abandoned++;
          },
        }
      : {}),
  };
  return { s, state };
}

t.test('a lost call runs again after recover(); its sample is dropped and the retry recorded', async (t) => {
  const zone = flaky('zone', [7]); // round 2 (after 5 samples in round 1), its second exec
  const docker = flaky('docker', []);
  const r = await runLifecycle({ rounds: 3, warmups: 0, densities: [1], seed: 1, sandboxes: [zone.s, docker.s] });
  t.equal(r.sandboxes.find((x) => x.kind === 'zone')?.status, 'ok', 'the zone stays in the run');
  t.equal(zone.state.recovered, 1, 'recover() ran once, before the second attempt');
  const exec = r.figures.find((f) => f.id === 'exec_true')!;
  t.equal(exec.bySandbox.zone?.n, 15, '3 rounds of 5 samples: the lost attempt left none behind');
  t.same(r.retried.map((x) => [x.kind, x.round, x.figure]), [['zone', 1, 'exec true']]);
  t.match(r.retried[0]!.reason, /lost at call 7/);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bh-lifecycle-retry-'));
  t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
  const md = fs.readFileSync(writeLifecycleReport(r, out).reportMd, 'utf8');
  t.match(md, /Figure calls lost and run again .*: 1\./);
  t.match(md, /- zone, round 2\/3, exec true: lost at call 7/);
});

t.test('lost FIGURE_ATTEMPTS times in a row, or lost by a sandbox that cannot recover: that sandbox fails, the others go on', async (t) => {
  const twice = flaky('zone', Array.from({ length: FIGURE_ATTEMPTS }, (_, i) => i + 2));
  const once = flaky('docker', [1], false);
  const runc = flaky('runc', []);
  const r = await runLifecycle({ rounds: 2, warmups: 0, densities: [1], seed: 2, sandboxes: [twice.s, once.s, runc.s] });
  const status = (k: SandboxKind) => r.sandboxes.find((x) => x.kind === k);
  t.equal(status('zone')?.status, 'failed');
  t.match(status('zone')?.reason, new RegExp(`round 1/2: exec true lost ${FIGURE_ATTEMPTS} times in a row; the last: lost at call ${FIGURE_ATTEMPTS + 1}`));
  t.equal(status('docker')?.status, 'failed');
  t.match(status('docker')?.reason, /round 1\/2: exec true: lost at call 1/);
  t.equal(status('runc')?.status, 'ok');
  t.equal(r.figures.find((f) => f.id === 'exec_true')?.bySandbox.runc?.n, 10);
  t.equal(r.figures.find((f) => f.id === 'exec_true')?.bySandbox.zone, undefined, 'a failed sandbox has no figures');
});

t.test('a figure call that outlives its deadline is lost, logged; it runs again after an abandoning recover()', async (t) => {
  const zone = flaky('zone', [], true, [3]);
  const lines: string[] = [];
  const r = await runLifecycle({ rounds: 2, warmups: 0, densities: [1], seed: 3, sandboxes: [zone.s], figureDeadlineMs: 300, log: (m) => lines.push(m) });
  t.equal(r.sandboxes[0]?.status, 'ok');
  t.equal(zone.state.abandoned, 1, 'recover() was told the lost round was abandoned');
  t.match(r.retried[0]?.reason, /zone: exec true took longer than 300 ms \(its deadline\)/);
  t.equal(r.figures.find((f) => f.id === 'exec_true')?.bySandbox.zone?.n, 10, 'both rounds counted in full');
  t.ok(lines.some((l) => /^zone: round 1\/2: exec round trip \(`true`\): 10\.0 ms$/.test(l)), `each value is logged as it comes:\n${lines.join('\n')}`);
});

t.test('figureDeadlineMs must be a positive integer', async (t) => {
  await t.rejects(runLifecycle({ sandboxes: [], figureDeadlineMs: 0 }), { code: 'INVALID_CONFIG', message: /figureDeadlineMs: 0; allowed: a positive integer/ });
});
