// The liveness watch that fails a zone whose agent stopped answering: against the real agent on
// this host (stopped with SIGSTOP, as a hung guest looks from the host), and its clock rules.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidConfigError } from '../../src/errors';
import { livenessSettings, watchAgentLiveness, type LivenessSettings } from '../../src/zone/agent';
import { LocalZone } from '../../src/zone/local';
import { agentPidOf, haveUnshare, startLocalAgent } from './fixtures/local-agent';

t.setTimeout(120_000);

const FAST: LivenessSettings = { pingAfterMs: 200, failAfterMs: 1_000, tickMs: 50 };

const missing = haveUnshare();
if (missing) {
  t.pass(`skipped: ${missing}`, { skip: missing });
} else {
  t.test('the real agent: alive while it answers, declared gone once it is stopped', async (t) => {
    const agent = await startLocalAgent();
    t.teardown(() => agent.stop());
    const client = await agent.connect();
    t.teardown(() => client.close());
    const agentPid = agentPidOf(agent.child.pid!)!;
    t.ok(agentPid > 0, `the agent runs as host pid ${agentPid}`);

    let silentFor: number | undefined;
    let declaredAt = 0;
    let declarations = 0;
    const stop = watchAgentLiveness(client, (ms) => ((silentFor = ms), (declaredAt = performance.now()), declarations++), FAST);
    t.teardown(stop);
    await sleep(2_500); // idle: only the watch's pings go over the session
    t.equal(silentFor, undefined, 'an idle agent that answers pings is never declared gone');
    t.ok(performance.now() - client.lastHeardAt < FAST.pingAfterMs + 4 * FAST.tickMs, 'its pings were answered');

    process.kill(agentPid, 'SIGSTOP');
    t.teardown(() => process.kill(agentPid, 'SIGCONT'));
    const stoppedAt = performance.now();
    while (silentFor === undefined && performance.now() - stoppedAt < 10_000) await sleep(20);
    t.ok(silentFor !== undefined && silentFor >= FAST.failAfterMs, `a stopped agent is declared gone after ${silentFor?.toFixed(0)} ms of silence`);
    t.ok(declaredAt - stoppedAt < FAST.failAfterMs + FAST.pingAfterMs + 10 * FAST.tickMs, `${(declaredAt - stoppedAt).toFixed(0)} ms after it stopped`);
    process.kill(agentPid, 'SIGCONT');
    await client.ping();
    await sleep(FAST.failAfterMs + 200);
    t.equal(declarations, 1, 'it is declared gone once only (the watch stopped itself)');
  });
}

t.test('the clock: pings, a closed session, a stop, and a late tick', async (t) => {
  // An agent that never answers (the real one above shows answering).
  const fake = () => {
    const a = {
      lastHeardAt: performance.now(),
      isOpen: true,
      pings: 0,
      ping: () => (a.pings++, new Promise<number>(() => undefined)),
    };
    return a;
  };
  const silent = fake();
  let calls = 0;
  watchAgentLiveness(silent, () => calls++, FAST);
  await sleep(1_600);
  t.equal(calls, 1, 'a silent agent is declared gone once');
  t.equal(silent.pings, 1, 'with one ping outstanding, not one per tick');

  const closed = fake();
  let closedCalls = 0;
  watchAgentLiveness(closed, () => closedCalls++, FAST);
  closed.isOpen = false;
  const stopped = fake();
  let stoppedCalls = 0;
  watchAgentLiveness(stopped, () => stoppedCalls++, FAST)();
  await sleep(1_600);
  t.equal(closedCalls, 0, 'a session that closed ends the watch (its own path ends the zone)');
  t.equal(stoppedCalls, 0, 'a stopped watch never fires');

  const starved = fake();
  let starvedCalls = 0;
  watchAgentLiveness(starved, () => starvedCalls++, FAST);
  await sleep(2 * FAST.tickMs);
  const until = performance.now() + 1_500; // this process does not run for longer than failAfterMs
  while (performance.now() < until);
  await sleep(3 * FAST.tickMs);
  t.equal(starvedCalls, 0, 'silence while this process was not running is not held against the agent');
  await sleep(1_500);
  t.equal(starvedCalls, 1, 'the silence after it is');
});

t.test('settings: defaults, overrides, and typed errors for bad ones (before any zone is made)', async (t) => {
  t.same(livenessSettings(), { pingAfterMs: 10_000, failAfterMs: 60_000, tickMs: 2_000 }, 'the defaults');
  t.same(livenessSettings({ failAfterMs: 120_000 }), { pingAfterMs: 10_000, failAfterMs: 120_000, tickMs: 2_000 }, 'one field overridden');
  const bad: Array<[Partial<LivenessSettings>, string]> = [
    [{ failAfterMs: 0 }, 'agentLiveness.failAfterMs'],
    [{ tickMs: Number.NaN }, 'agentLiveness.tickMs'],
    [{ pingAfterMs: '5' as unknown as number }, 'agentLiveness.pingAfterMs'],
    [{ pingAfterMs: 60_000 }, 'agentLiveness.pingAfterMs'],
  ];
  for (const [given, field] of bad) {
    t.throws(() => livenessSettings(given), { name: 'InvalidConfigError', field }, `${JSON.stringify(given)}: ${field}`);
  }
  await t.rejects(LocalZone.create({ image: 'busybox', memoryMiB: 64 }, { agentLiveness: { failAfterMs: -1 } }), InvalidConfigError, 'Zone creation refuses them up front');
});
