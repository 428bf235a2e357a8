// A zone's start-up phases from the times it noted and the agent's boot markers.
import t from 'tap';
import { MARKER_AGENT_READY, MARKER_AGENT_STARTED, startupPhases, type StartupMarks } from '../../src/zone/startup';

const base: Omit<StartupMarks, 'markers'> = { begin: 1000, imageResolved: 1010, kernelFound: 1012, vmmBegin: 1014, vmmStarted: 1042, agentConnected: 3100, running: 3100 };

t.test('both markers split the boot into the kernel and the agent', async (t) => {
  const s = startupPhases({ ...base, markers: new Map([[MARKER_AGENT_STARTED, 1500], [MARKER_AGENT_READY, 2000]]) });
  t.same(s, { totalMs: 2100, imageMs: 10, kernelMs: 2, vmmSetupMs: 30, kernelBootMs: 1472, agentStartMs: 500, agentConnectMs: 86, mainLaunchMs: 0 });
  const sum = s.imageMs + s.kernelMs + s.vmmSetupMs + s.kernelBootMs! + s.agentStartMs! + s.agentConnectMs + s.mainLaunchMs;
  t.equal(sum, s.totalMs, 'the phases add up to the whole');
});

t.test('without both markers (another VMM, an old agent) the boot is one phase with the session', async (t) => {
  for (const markers of [new Map<number, number>(), new Map([[MARKER_AGENT_READY, 2000]])]) {
    const s = startupPhases({ ...base, markers });
    t.equal(s.kernelBootMs, undefined);
    t.equal(s.agentStartMs, undefined);
    t.equal(s.agentConnectMs, 2058, 'from the VMM start to the session');
  }
});

t.test('markers out of order, or before the VMM setup ended, are not trusted', async (t) => {
  t.equal(startupPhases({ ...base, markers: new Map([[MARKER_AGENT_STARTED, 2000], [MARKER_AGENT_READY, 1500]]) }).kernelBootMs, undefined);
  t.equal(startupPhases({ ...base, markers: new Map([[MARKER_AGENT_STARTED, 5], [MARKER_AGENT_READY, 1500]]) }).kernelBootMs, undefined);
});
