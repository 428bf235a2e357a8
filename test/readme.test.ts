/**
 * The README's first tour snippet, run as written (with the import pointed at the source), so the
 * documentation cannot drift from the API.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { openHypervisor } from '../src/index';

const skip = existsSync('/dev/kvm') ? false : 'this host has no /dev/kvm';

t.test('README tour: a real-mode guest writes a port, halts, and the VM is released', { skip }, async (t) => {
  const seen: bigint[] = [];
  const exits: string[] = [];
  {
    const kvm = openHypervisor();
    await using vm = kvm.createVm({ memoryMiB: 16, vcpus: 1, irqchip: false });
    vm.memory.write(0x1000, Buffer.from([0xe6, 0x10, 0xf4])); // out 0x10, al; hlt
    vm.vcpu(0).setRegisters({ general: { rip: 0x1000, rax: 42 }, segments: { cs: { base: 0, selector: 0 } } });
    vm.onPort(0x10, 1, (access) => {
      seen.push(BigInt(access.data));
    });
    vm.on('exit', (exit) => exits.push(exit.reason));
    vm.start();
    t.equal(await vm.waitForStop(5000), true, 'the guest halted and the VM stopped');
    t.equal(vm.state, 'stopped');
  }
  t.same(seen, [42n], 'the handler saw the byte the guest wrote');
  t.same(exits, ['hlt'], 'the vCPU left through HLT');
});
