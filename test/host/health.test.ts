// The kernel-fault watch of the emulated host's console (src/host/emulated/health.ts): it reads a
// console that arrives in arbitrary chunks and must name an oops's first line, once, and nothing
// else a healthy host prints. The lines are the host kernel's own (from this project's CI and
// stress runs of nested SVM under TCG).
import t from 'tap';
import { KernelFaultWatch } from '../../src/host/emulated/health';

const HEALTHY = [
  '[    0.928092] kvm_intel: VMX not supported by CPU 0',
  'bulkhead-init: uptime 2.26s: starting the agent (/usr/bin/node on /dev/vport2p1)',
  '[    9.725881] kvm: kvm [82]: vcpu0, guest rIP: 0xffffffff8100397b Unhandled WRMSR(0xc0010007) = 0xffff',
  '[   12.000000] a line that mentions BUG: in the middle is not a report',
  '[   13.000000] debugfs: Directory \'kvm-82\' with parent \'kvm\' already present!',
];

t.test('a healthy console has no fault', async (t) => {
  const w = new KernelFaultWatch();
  for (const line of HEALTHY) t.equal(w.push(`${line}\r\n`), undefined, line);
  t.equal(w.fault, undefined);
});

t.test('each kind of fault report is named by its first line', async (t) => {
  for (const line of [
    '[  235.030744] BUG: kernel NULL pointer dereference, address: 0000000000000018',
    '[   40.1] Oops: 0000 [#1] PREEMPT SMP NOPTI',
    '[   41.2] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] SMP',
    '[   42.3] kernel BUG at arch/x86/kvm/mmu/mmu.c:1234!',
    '[   43.4] Kernel panic - not syncing: Fatal exception',
    'BUG: unable to handle page fault for address: ffff888000000000',
  ]) {
    const w = new KernelFaultWatch();
    w.push(HEALTHY.join('\n') + '\n');
    t.equal(w.push(`${line}\r\n`), line, line);
  }
});

t.test('a report split across chunks is found once it is complete, and only once', async (t) => {
  const w = new KernelFaultWatch();
  const text = `${HEALTHY[2]}\r\n[  235.030744] BUG: kernel NULL pointer dereference, address: 0000000000000018\r\n[  235.031168] #PF: supervisor read access in kernel mode\r\n[  236.0] Oops: 0000 [#1]\r\n`;
  const seen: string[] = [];
  for (let i = 0; i < text.length; i += 7) {
    const found = w.push(text.slice(i, i + 7));
    if (found !== undefined) seen.push(found);
  }
  t.same(seen, ['[  235.030744] BUG: kernel NULL pointer dereference, address: 0000000000000018'], 'the first report, once');
  t.equal(w.fault, seen[0]);
});

t.test('an endless line without a newline is bounded, and a fault after it is still found', async (t) => {
  const w = new KernelFaultWatch();
  const found = Array.from({ length: 1000 }, () => w.push('x'.repeat(10_000))).filter((f) => f !== undefined);
  t.same(found, [], '10 MB with no newline: nothing found');
  t.equal(w.push('\n[ 1.0] BUG: soft lockup - CPU#0 stuck for 22s!\n'), '[ 1.0] BUG: soft lockup - CPU#0 stuck for 22s!');
});
