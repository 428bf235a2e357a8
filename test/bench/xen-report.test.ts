// The Xen benchmark's pure report code: warm-up rounds are not counted, each side's phases are
// summarized, ours / xl is computed from the totals (and per round), the ≤ 0.5× goal is judged, and
// report.md / chart.svg carry the figures. Made-up samples; no timing is measured or asserted.
import t from 'tap';
import { renderXenSvg } from '../../src/bench/xen/chart';
import { assembleResults, compareKernel, goalsFor, ratioOf, renderMarkdown } from '../../src/bench/xen/report';
import type { CreateSample, InsidePayload, InsideResult } from '../../src/bench/xen/types';
import type { HostFacts } from '../../src/bench/host-facts';

const sample = (side: 'ours' | 'xl', round: number, setupMs: number, toMarkerMs: number, kernel = 'generic'): CreateSample => ({
  kernel,
  side,
  round,
  warmup: round === 0,
  position: (round % 2 === 0) === (side === 'ours') ? 1 : 2,
  setupMs,
  toMarkerMs,
  totalMs: setupMs + toMarkerMs,
});

const create: CreateSample[] = [
  sample('ours', 0, 900, 9000), // warm-up: not counted
  sample('xl', 0, 9000, 9000),
  sample('ours', 1, 100, 900),
  sample('xl', 1, 1000, 1000),
  sample('ours', 2, 200, 1000),
  sample('xl', 2, 1200, 1200),
  sample('ours', 3, 150, 850),
  sample('xl', 3, 1100, 900),
];

t.test('compareKernel: counted rounds only, phases and ratios', async (t) => {
  const c = compareKernel(create, 'generic', '/boot/vmlinuz');
  t.equal(c.ours?.totalMs.n, 3, 'the warm-up round is left out');
  t.same(c.ours?.setupMs.samples, [100, 200, 150]);
  t.equal(c.ours?.totalMs.median, 1000);
  t.equal(c.xl?.totalMs.median, 2000);
  t.equal(c.ratio?.median, 0.5, 'ours / xl of the medians');
  t.same(c.ratio?.range, [1000 / 2400, 1200 / 2000], 'worst and best pairing of the ranges');
  t.same(c.pairedRatio?.samples, [1000 / 2000, 1200 / 2400, 1000 / 2000], 'per round');
  t.same(ratioOf({ median: 2, min: 1, max: 4, n: 3, samples: [] }, { median: 4, min: 2, max: 8, n: 3, samples: [] }), { median: 0.5, range: [1 / 8, 2] });
});

t.test('goals: ≤ 0.5× is met at exactly 0.5, not above; a missing side is "not measured"', async (t) => {
  const [g] = goalsFor([compareKernel(create, 'generic', 'k')]);
  t.equal(g?.met, true);
  t.match(g?.measured, /0\.50×/);
  const slower = create.map((s) => (s.side === 'ours' ? { ...s, totalMs: s.totalMs * 1.5 } : s));
  t.equal(goalsFor([compareKernel(slower, 'generic', 'k')])[0]?.met, false);
  const none = goalsFor([compareKernel(create.filter((s) => s.side === 'xl'), 'generic', 'k')])[0];
  t.equal(none?.met, null);
  t.match(none?.measured, /ours did not run/);
});

t.test('assembleResults + report.md + chart.svg', async (t) => {
  const host: HostFacts = {
    cpuModel: 'Test CPU',
    cpuCount: 2,
    virtualization: 'pvm',
    virtualizationDetail: 'test',
    runsUnderHypervisor: true,
    kernel: 'Linux test',
    node: 'v20',
    memoryGiB: 8,
    loadAverageAtStart: [0.5, 0.5, 0.5],
    loadAverageAtEnd: [3, 2, 1],
    runtimeVersions: {},
  };
  const payload: InsidePayload = {
    runs: 3, warmups: 1, kernels: [{ label: 'generic', kernel: '/boot/vmlinuz', initrd: '/tmp/i.cpio' }, { label: 'xen', kernel: '/k/vmlinux', initrd: '/tmp/i.cpio' }],
    cmdline: 'console=hvc0', memoryMiB: 128, marker: 'M', evtchnOps: 200, grantOps: 100, pollMs: 100, settleMs: 500, timeoutMs: 1000,
  };
  const op = (us: number[]) => us.map((v, round) => ({ round, warmup: round === 0, us: v }));
  const inside: InsideResult = {
    xen: { version: '4.17', nrCpus: 1, dom0Kernel: '6.1' },
    evtchnUs: op([5000, 800, 900, 850]),
    grantUs: op([9000, 2000, 2100, 2200]),
    create: [...create, ...create.map((s) => ({ ...s, kernel: 'xen' }))],
    errors: [],
  };
  const r = assembleResults({ startedAt: 'a', finishedAt: 'b', host, xenHostBootMs: 30000, payload, inside, skipped: [] });
  t.equal(r.evtchnUs.median, 850, 'warm-up sample left out');
  t.equal(r.grantUs.n, 3);
  t.equal(r.comparisons.length, 2);
  t.equal(r.goals.length, 2);
  t.ok(r.caveats.some((c) => /load average up to 3/.test(c)), 'a busy machine is a caveat');
  const md = renderMarkdown(r);
  t.match(md, /Xen 4\.17 PV .* under QEMU TCG/, 'states the virtualization mode');
  t.match(md, /Load average 0\.5 \/ 0\.5 \/ 0\.5 at start, 3 \/ 2 \/ 1 at end/);
  t.match(md, /\| generic \| ours \| \*\*total\*\* \| \*\*1000 \[1000–1200\]\*\* \| \*\*0\.50×\*\*/);
  t.match(md, /spawn `xl create` → it returns \| 1100 \[1000–1200\]/);
  t.match(md, /What these numbers cannot represent/);
  const svg = renderXenSvg(r);
  t.match(svg, /^<svg /);
  t.match(svg, /xen kernel/);
  t.match(svg, /xl = 1/);
});
