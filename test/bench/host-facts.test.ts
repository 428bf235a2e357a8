// What the report says about the machine follows from its facts: virtualization mode from the CPU flags
// and /sys/module/kvm_pvm, and a caveat in words wherever a figure cannot stand for hardware virtualization.
import t from 'tap';
import { caveatsFor, collectHostFacts, detectVirtualization, readCpuInfo, type HostFacts } from '../../src/bench/host-facts';

t.test('virtualization mode', async (t) => {
  t.equal(detectVirtualization(new Set(['fpu', 'svm']), false, true).mode, 'hardware');
  t.equal(detectVirtualization(new Set(['vmx']), false, true).mode, 'hardware');
  t.equal(detectVirtualization(new Set(['fpu']), true, true).mode, 'pvm', 'no vmx/svm, kvm_pvm loaded');
  t.equal(detectVirtualization(new Set(['fpu']), false, false).mode, 'none');
  t.equal(detectVirtualization(new Set(['svm']), false, false).mode, 'none', 'svm without /dev/kvm');
  const cpu = readCpuInfo('processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu svm hypervisor\n');
  t.equal(cpu.model, 'Test CPU 9000');
  t.ok(cpu.flags.has('svm') && cpu.flags.has('hypervisor'));
});

t.test('caveats in words', async (t) => {
  const base: HostFacts = { ...collectHostFacts(), virtualization: 'hardware', runsUnderHypervisor: false, cpuCount: 8, loadAverageAtStart: [0.1, 0.1, 0.1] };
  t.same(caveatsFor(base), [], 'a quiet bare-metal host with hardware virtualization needs none');
  t.match(caveatsFor({ ...base, virtualization: 'pvm' }).join('\n'), /PVM.*would not represent hardware virtualization/);
  t.match(caveatsFor({ ...base, runsUnderHypervisor: true }).join('\n'), /itself a virtual machine/);
  t.match(caveatsFor(base, ['host', 'emulated-host']).join('\n'), /@emulated-host.*QEMU TCG/);
  t.match(caveatsFor({ ...base, loadAverageAtStart: [9, 9, 9] }).join('\n'), /busy \(1-minute load average up to 9 on 8 CPUs/);
  t.same(caveatsFor({ ...base, loadAverageAtStart: [1, 2, 9] }), [], 'a busy past (15-minute average) is not a busy run');
});
