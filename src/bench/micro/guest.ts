/**
 * The smallest guest that exits forever: real mode, `out 0x10, al` in a loop. Each iteration is one
 * port-I/O exit that the VMM hands to a JavaScript handler, so counting handler calls over time gives
 * the cost of one exit round trip (guest -> KVM -> native vCPU thread -> JS -> back into the guest).
 */
import type { Vm } from '../../kvm';

export const EXIT_PORT = 0x10;
const CODE_ADDRESS = 0x1000;

// prettier-ignore
const OUT_LOOP = [
  0xba, 0x10, 0x00, // mov dx,0x10
  0xee, //             loop: out dx,al
  0xeb, 0xfd, //       jmp loop
];

export function loadOutLoop(vm: Vm): void {
  vm.memory.write(CODE_ADDRESS, Buffer.from(OUT_LOOP));
  const segment = { base: 0, selector: 0, limit: 0xffff };
  vm.vcpu(0).setRegisters({
    general: { rip: CODE_ADDRESS, rsp: 0x8000, rflags: 0x2 },
    segments: { cs: segment, ds: segment, es: segment, ss: segment, fs: segment, gs: segment },
  });
}
